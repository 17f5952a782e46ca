//! The AWS credentials and region CloudWatch queries are signed with,
//! found as the AWS SDKs' default chain finds them, in this order:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and,
//!    for temporary credentials, `AWS_SESSION_TOKEN`;
//! 2. the shared files' profile `AWS_PROFILE` (default `default`): the
//!    credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default
//!    `~/.aws/credentials`) and the config file (`AWS_CONFIG_FILE`,
//!    default `~/.aws/config`, sections `[profile NAME]`), with
//!    `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`,
//!    or `role_arn` and `web_identity_token_file`;
//! 3. web identity: `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`
//!    (`AWS_ROLE_SESSION_NAME` optional), exchanged at STS
//!    (`AssumeRoleWithWebIdentity`, at `AWS_ENDPOINT_URL_STS`,
//!    `AWS_ENDPOINT_URL`, or `https://sts.REGION.amazonaws.com`) for
//!    temporary credentials, kept until five minutes before they expire.
//!    This is what EKS' IAM roles for service accounts set up.
//!
//! Not read: the EC2 instance metadata service, ECS container
//! credentials, SSO, `credential_process` and `source_profile` chains.
//! A profile that names one is an error saying so.
//!
//! The chain is small and written here rather than taken from
//! `aws-config`, which brings the generated STS and SSO clients, its own
//! HTTP client stack and a second TLS crypto provider (see the README).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use http::Method;
use http::header::{CONTENT_TYPE, HeaderValue};

use super::prometheus::MetricError;
use crate::cluster::proxy::{EXCERPT_LEN, HttpEdge, HttpRequest, excerpt};

/// How the environment is read (the process's, or a test's table).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process's environment, empty values as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Credentials to sign with.
#[derive(Clone, PartialEq)]
pub(crate) struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they were found, for messages.
    pub source: String,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// A web identity to exchange for credentials.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WebIdentity {
    pub role_arn: String,
    pub token_file: PathBuf,
    pub session_name: String,
}

/// What the chain found without asking anyone.
#[derive(Debug, PartialEq)]
pub(crate) enum Found {
    Static(AwsCredentials),
    WebIdentity(WebIdentity),
}

fn fail(message: impl Into<String>) -> MetricError {
    MetricError::Query(message.into())
}

fn home() -> Option<PathBuf> {
    process_env("HOME").map(PathBuf::from)
}

/// An INI file's sections, keys lowercased, values trimmed.
pub(crate) fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    sections
}

/// The profile's settings: the config file's, overridden by the
/// credentials file's; `None` when neither file has it.
fn profile(env: Env, name: &str) -> Result<Option<BTreeMap<String, String>>, MetricError> {
    let read = |var: &str, default: &str| -> Result<Option<(String, String)>, MetricError> {
        let path = env(var)
            .map(PathBuf::from)
            .or_else(|| home().map(|h| h.join(".aws").join(default)));
        let Some(path) = path else { return Ok(None) };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some((path.display().to_string(), text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(format!("reading {}: {e}", path.display()))),
        }
    };
    let mut found = None::<BTreeMap<String, String>>;
    if let Some((_, text)) = read("AWS_CONFIG_FILE", "config")? {
        let mut sections = ini(&text);
        let section = if name == "default" {
            sections
                .remove("default")
                .or_else(|| sections.remove("profile default"))
        } else {
            sections.remove(&format!("profile {name}"))
        };
        found = section;
    }
    if let Some((_, text)) = read("AWS_SHARED_CREDENTIALS_FILE", "credentials")?
        && let Some(section) = ini(&text).remove(name)
    {
        found.get_or_insert_with(BTreeMap::new).extend(section);
    }
    Ok(found)
}

/// The credentials or web identity of the chain's first link that has
/// them; `now` names the web identity's session.
pub(crate) fn find(env: Env, now: SystemTime) -> Result<Found, MetricError> {
    let session_name = || {
        env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            format!("canary-{secs}")
        })
    };
    match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            return Ok(Found::Static(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: env("AWS_SESSION_TOKEN"),
                source: "the environment".into(),
            }));
        }
        (Some(_), None) => {
            return Err(fail(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            ));
        }
        (None, None) => {}
    }
    let named = env("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".into());
    match profile(env, &name)? {
        Some(p) => {
            let what = format!("AWS profile `{name}`");
            if let (Some(id), Some(secret)) =
                (p.get("aws_access_key_id"), p.get("aws_secret_access_key"))
            {
                return Ok(Found::Static(AwsCredentials {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    session_token: p.get("aws_session_token").cloned(),
                    source: what,
                }));
            }
            if let (Some(role), Some(file)) = (p.get("role_arn"), p.get("web_identity_token_file"))
            {
                return Ok(Found::WebIdentity(WebIdentity {
                    role_arn: role.clone(),
                    token_file: PathBuf::from(file),
                    session_name: p
                        .get("role_session_name")
                        .cloned()
                        .unwrap_or_else(session_name),
                }));
            }
            for unsupported in [
                "source_profile",
                "credential_source",
                "credential_process",
                "sso_session",
                "sso_start_url",
            ] {
                if p.contains_key(unsupported) {
                    return Err(fail(format!(
                        "{what} uses `{unsupported}`, which canary does not read: use static \
                         keys, `role_arn` with `web_identity_token_file`, or the environment"
                    )));
                }
            }
            if named.is_some() {
                return Err(fail(format!(
                    "{what} has no `aws_access_key_id` and `aws_secret_access_key`"
                )));
            }
        }
        None if named.is_some() => {
            return Err(fail(format!(
                "AWS profile `{name}` (AWS_PROFILE) is in neither the shared credentials nor \
                 the config file"
            )));
        }
        None => {}
    }
    if let (Some(file), Some(role)) = (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN")) {
        return Ok(Found::WebIdentity(WebIdentity {
            role_arn: role,
            token_file: PathBuf::from(file),
            session_name: session_name(),
        }));
    }
    Err(fail(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile in \
         ~/.aws/credentials (AWS_PROFILE), or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN",
    ))
}

/// The region: the `AWS_REGION` or `AWS_DEFAULT_REGION` environment
/// variable, or the profile's `region`.
pub(crate) fn default_region(env: Env) -> Option<String> {
    env("AWS_REGION")
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| {
            let name = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
            profile(env, &name).ok().flatten()?.get("region").cloned()
        })
}

/// STS's address for `region`.
pub(crate) fn sts_endpoint(env: Env, region: &str) -> String {
    env("AWS_ENDPOINT_URL_STS")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"))
}

/// The form `AssumeRoleWithWebIdentity` is asked with.
pub(crate) fn assume_role_form(w: &WebIdentity, token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &w.role_arn)
        .append_pair("RoleSessionName", &w.session_name)
        .append_pair("WebIdentityToken", token)
        .finish()
}

/// The text of the first `<tag>` element of an XML answer, unescaped.
fn element(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// STS's answer: the credentials and when they expire.
pub(crate) fn parse_assume_role(
    status: u16,
    body: &str,
) -> Result<(AwsCredentials, Option<SystemTime>), MetricError> {
    if !(200..300).contains(&status) {
        let code = element(body, "Code").unwrap_or_default();
        let message = element(body, "Message").unwrap_or_else(|| excerpt(body, EXCERPT_LEN));
        return Err(fail(format!(
            "AssumeRoleWithWebIdentity: HTTP {status} {code}: {message}"
        )));
    }
    let (Some(id), Some(secret), Some(token)) = (
        element(body, "AccessKeyId"),
        element(body, "SecretAccessKey"),
        element(body, "SessionToken"),
    ) else {
        return Err(fail(
            "AssumeRoleWithWebIdentity answered no credentials".to_string(),
        ));
    };
    let expires = element(body, "Expiration")
        .and_then(|e| humantime::parse_rfc3339_weak(e.trim_end_matches('Z')).ok());
    Ok((
        AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: Some(token),
            source: "web identity".into(),
        },
        expires,
    ))
}

/// Temporary credentials from STS, per role, token and endpoint.
type Cache = Vec<((String, String, String), AwsCredentials, SystemTime)>;
static ISSUED: Mutex<Cache> = Mutex::new(Vec::new());
/// Issued credentials are asked for again this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The chain's credentials, asking STS for a web identity's.
pub(crate) async fn credentials(
    edge: &HttpEdge,
    env: Env<'_>,
    region: &str,
) -> Result<AwsCredentials, MetricError> {
    let now = SystemTime::now();
    let w = match find(env, now)? {
        Found::Static(c) => return Ok(c),
        Found::WebIdentity(w) => w,
    };
    let token = std::fs::read_to_string(&w.token_file).map_err(|e| {
        fail(format!(
            "reading the web identity token file {}: {e}",
            w.token_file.display()
        ))
    })?;
    let token = token.trim().to_string();
    let endpoint = sts_endpoint(env, region);
    let key = (w.role_arn.clone(), token.clone(), endpoint.clone());
    {
        let cache = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c, _)) = cache
            .iter()
            .find(|(k, _, until)| *k == key && now + RENEW_BEFORE < *until)
        {
            return Ok(c.clone());
        }
    }
    let url = if endpoint.ends_with('/') {
        endpoint
    } else {
        format!("{endpoint}/")
    };
    let mut req = HttpRequest::new(Method::POST, &url, super::prometheus::DEFAULT_TIMEOUT);
    req.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    req.body = Some(assume_role_form(&w, &token).into_bytes());
    let reply = edge.send(req).await?;
    let (c, expires) = parse_assume_role(reply.status, &reply.body)?;
    let until = expires.unwrap_or(now + Duration::from_secs(900));
    let mut cache = ISSUED.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(k, _, _)| *k != key);
    cache.push((key, c.clone(), until));
    Ok(c)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write as _;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    /// An environment whose shared files are `dir`'s (missing unless
    /// written), never the user's own.
    fn with_files(
        dir: &tempfile::TempDir,
        more: &[(&str, &str)],
    ) -> impl Fn(&str) -> Option<String> + use<> {
        let credentials = dir.path().join("credentials").display().to_string();
        let config = dir.path().join("config").display().to_string();
        let mut pairs = vec![
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()),
            ("AWS_CONFIG_FILE", config.as_str()),
        ];
        pairs.extend_from_slice(more);
        env_of(&pairs)
    }

    #[test]
    fn the_environment_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "[default]\naws_access_key_id = FILE\naws_secret_access_key = f\n",
        )
        .unwrap();
        let e = with_files(
            &dir,
            &[
                ("AWS_ACCESS_KEY_ID", "ENV"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "t"),
            ],
        );
        let Found::Static(c) = find(&e, SystemTime::now()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("ENV", Some("t"))
        );
        assert!(!format!("{c:?}").contains("\"s\""), "{c:?}");
        let e = with_files(&dir, &[("AWS_ACCESS_KEY_ID", "ENV")]);
        assert_eq!(
            find(&e, SystemTime::now()).unwrap_err().to_string(),
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
        );
    }

    #[test]
    fn a_profile_is_read_from_both_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "# keys\n[default]\naws_access_key_id=D\naws_secret_access_key=d\n\n\
             [ci]\naws_access_key_id = CI\naws_secret_access_key = c\naws_session_token = tok\n",
        )
        .unwrap();
        let mut config = std::fs::File::create(dir.path().join("config")).unwrap();
        writeln!(
            config,
            "[default]\nregion = eu-west-1\n[profile ci]\nregion = us-west-2\n\
             [profile irsa]\nrole_arn = arn:aws:iam::1:role/r\nweb_identity_token_file = /t\n\
             [profile chained]\nsource_profile = ci\nrole_arn = arn:aws:iam::1:role/r"
        )
        .unwrap();
        let now = SystemTime::now();
        let e = with_files(&dir, &[]);
        let Found::Static(c) = find(&e, now).unwrap() else {
            panic!()
        };
        assert_eq!(c.access_key_id, "D");
        assert_eq!(default_region(&e).as_deref(), Some("eu-west-1"));

        let e = with_files(&dir, &[("AWS_PROFILE", "ci")]);
        let Found::Static(c) = find(&e, now).unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("CI", Some("tok"))
        );
        assert_eq!(c.source, "AWS profile `ci`");
        assert_eq!(default_region(&e).as_deref(), Some("us-west-2"));

        let e = with_files(
            &dir,
            &[("AWS_PROFILE", "irsa"), ("AWS_ROLE_SESSION_NAME", "s1")],
        );
        assert_eq!(
            find(&e, now).unwrap(),
            Found::WebIdentity(WebIdentity {
                role_arn: "arn:aws:iam::1:role/r".into(),
                token_file: "/t".into(),
                session_name: "s1".into()
            })
        );

        let e = with_files(&dir, &[("AWS_PROFILE", "chained")]);
        assert!(
            find(&e, now)
                .unwrap_err()
                .to_string()
                .contains("uses `source_profile`, which canary does not read")
        );
        let e = with_files(&dir, &[("AWS_PROFILE", "nope")]);
        assert!(
            find(&e, now)
                .unwrap_err()
                .to_string()
                .starts_with("AWS profile `nope` (AWS_PROFILE) is in neither")
        );
    }

    #[test]
    fn web_identity_comes_from_the_environment_last() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let e = with_files(
            &dir,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/canary"),
            ],
        );
        assert_eq!(
            find(&e, now).unwrap(),
            Found::WebIdentity(WebIdentity {
                role_arn: "arn:aws:iam::1:role/canary".into(),
                token_file: "/var/run/token".into(),
                session_name: "canary-1700000000".into()
            })
        );
        assert_eq!(
            sts_endpoint(&e, "eu-central-1"),
            "https://sts.eu-central-1.amazonaws.com"
        );
        let e = with_files(&dir, &[]);
        assert!(
            find(&e, now)
                .unwrap_err()
                .to_string()
                .starts_with("no AWS credentials")
        );
    }

    #[test]
    fn sts_answers_are_read() {
        let w = WebIdentity {
            role_arn: "arn:aws:iam::1:role/r".into(),
            token_file: "/t".into(),
            session_name: "s".into(),
        };
        assert_eq!(
            assume_role_form(&w, "a.b+c"),
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s&WebIdentityToken=a.b%2Bc"
        );
        let ok = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>\
                  <Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>x&amp;y</SecretAccessKey>\
                  <SessionToken>tok</SessionToken><Expiration>2026-12-03T14:00:00Z</Expiration>\
                  </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        let (c, until) = parse_assume_role(200, ok).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str()),
            ("ASIA1", "x&y")
        );
        assert_eq!(
            until,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_306_400))
        );
        let refused = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>\
                       <Message>Couldn't retrieve verification key</Message></Error></ErrorResponse>";
        assert_eq!(
            parse_assume_role(400, refused).unwrap_err().to_string(),
            "AssumeRoleWithWebIdentity: HTTP 400 InvalidIdentityToken: Couldn't retrieve verification key"
        );
    }
}
