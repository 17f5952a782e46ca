//! "Did you mean": the closest known name to a misspelt one, for every
//! message about a name (fields, kinds, providers, functions).

/// The closest candidate to a misspelt name, when one is close enough to be
/// a plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Nothing much longer than a name is a typo of one, and comparing a
    // huge value would take time in its length times the candidates'.
    if name.len() > 256 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_need_to_be_close() {
        let known = ["stepWeight", "stepWeights", "maxWeight", "interval"];
        assert_eq!(did_you_mean("stepweight", known), Some("stepWeight"));
        assert_eq!(did_you_mean("intervall", known), Some("interval"));
        assert_eq!(did_you_mean("colour", known), None);
    }
}
