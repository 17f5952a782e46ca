//! Time as the core sees it: a value handed in by the caller. The core
//! never reads the clock, so every decision can be replayed in a test.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. Serialized as RFC 3339 so the
/// annotation reads well in `kubectl get -o yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Time(pub i64);

impl Time {
    pub fn plus(self, d: std::time::Duration) -> Time {
        Time(self.0.saturating_add(d.as_millis() as i64))
    }

    pub fn since(self, earlier: Time) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    pub fn to_rfc3339(self) -> String {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0.max(0) as u64);
        humantime::format_rfc3339_millis(t).to_string()
    }

    pub fn parse_rfc3339(s: &str) -> Result<Time, String> {
        let t = humantime::parse_rfc3339_weak(s).map_err(|e| e.to_string())?;
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis();
        Ok(Time(ms as i64))
    }
}

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}
