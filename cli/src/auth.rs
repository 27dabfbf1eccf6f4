//! How `ocadm` proves who it is to the DM. Locally (and to any DM that runs with
//! bearer tokens) it sends `Authorization: Bearer <token>`. In AWS the API sits
//! behind API Gateway's `AWS_IAM` authorizer, so `ocadm` signs each request with
//! SigV4 (service `execute-api`) using the caller's AWS credentials, which come
//! from the standard chain (environment, profile files with keys or a role to
//! assume, web identity, container or instance role) and are loaded once, on the
//! first request. This build leaves out the chain's SSO and `credential_process`
//! providers, as the Lambda functions share its `aws-config`; export an SSO
//! session's credentials into the environment instead.
//!
//! The rule ([`Auth::choose`]): an endpoint whose host ends with `.amazonaws.com`
//! (or `.amazonaws.com.cn`), or `OCADM_AUTH=sigv4`, means SigV4; otherwise the
//! bearer token. `OCADM_AUTH=token` forces the token.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// The variable that picks how ocadm authenticates: `sigv4` or `token`.
pub const AUTH_VAR: &str = "OCADM_AUTH";
/// The region to sign for when the endpoint's host does not say.
pub const REGION_VAR: &str = "OCADM_REGION";
/// The service name API Gateway verifies signatures for.
pub const SERVICE: &str = "execute-api";

/// Credentials this close to their expiry are loaded again before signing.
const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// How requests are authenticated.
pub enum Auth {
    /// `Authorization: Bearer <token>`, when there is a token.
    Bearer(Option<String>),
    /// A SigV4 signature over each request.
    SigV4(Signer),
}

/// What the environment says about authentication, read once.
#[derive(Debug, Default, Clone)]
pub struct AuthEnv {
    /// `OCADM_AUTH`.
    pub mode: Option<String>,
    /// `OCADM_REGION`.
    pub region: Option<String>,
    /// `AWS_REGION`.
    pub aws_region: Option<String>,
}

impl AuthEnv {
    pub fn read() -> AuthEnv {
        let var = |name| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        AuthEnv {
            mode: var(AUTH_VAR),
            region: var(REGION_VAR),
            aws_region: var("AWS_REGION"),
        }
    }
}

/// How ocadm authenticates to one endpoint, before any credentials are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Bearer,
    /// SigV4 for this region.
    SigV4 {
        region: String,
    },
}

impl Mode {
    /// The rule of this module's documentation, for `endpoint` (a URL).
    pub fn choose(endpoint: &str, env: &AuthEnv) -> Result<Mode> {
        let host = host_of(endpoint);
        let sigv4 = match env.mode.as_deref().map(str::trim) {
            None | Some("") => is_aws_host(&host),
            Some("sigv4") => true,
            Some("token") => false,
            Some(other) => bail!(
                "{AUTH_VAR} is {other:?}; set it to sigv4 (sign with AWS credentials) or token (send OCADM_TOKEN), \
                 or leave it unset: sigv4 for *.amazonaws.com endpoints, the token otherwise"
            ),
        };
        if !sigv4 {
            return Ok(Mode::Bearer);
        }
        let region = region_of_host(&host)
            .or_else(|| env.region.clone())
            .or_else(|| env.aws_region.clone())
            .ok_or_else(|| {
                anyhow!(
                    "cannot tell the AWS region of {host} to sign requests for: set {REGION_VAR} (or AWS_REGION) \
                     to the DM's region, such as us-west-2"
                )
            })?;
        Ok(Mode::SigV4 {
            region: region.trim().to_owned(),
        })
    }
}

impl Auth {
    /// The authentication for `endpoint`: SigV4 by the rule above, else the token.
    pub fn choose(endpoint: &str, token: Option<String>, env: &AuthEnv) -> Result<Auth> {
        Ok(match Mode::choose(endpoint, env)? {
            Mode::Bearer => Auth::Bearer(token.filter(|t| !t.is_empty())),
            Mode::SigV4 { region } => Auth::SigV4(Signer::new(region, host_of(endpoint))),
        })
    }
}

/// The host of a URL, lowercase, without port, user info or IPv6 brackets.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn is_aws_host(host: &str) -> bool {
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// The region of an execute-api host: `ID.execute-api.REGION.amazonaws.com`,
/// or a VPC endpoint's `ID-vpce-ID.execute-api.REGION.vpce.amazonaws.com`.
fn region_of_host(host: &str) -> Option<String> {
    if !is_aws_host(host) {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let at = labels.iter().position(|l| *l == "execute-api")?;
    let region = labels.get(at + 1)?;
    let looks_like_region = region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    looks_like_region.then(|| (*region).to_owned())
}

/// Signs requests with the caller's AWS credentials.
pub struct Signer {
    region: String,
    host: String,
    loaded: Mutex<Option<Loaded>>,
}

/// The credential chain, the runtime it runs on, and its latest credentials.
struct Loaded {
    runtime: tokio::runtime::Runtime,
    provider: aws_credential_types::provider::SharedCredentialsProvider,
    credentials: Credentials,
}

impl Signer {
    fn new(region: String, host: String) -> Signer {
        Signer {
            region,
            host,
            loaded: Mutex::new(None),
        }
    }

    /// The headers that sign `method url` with these `headers` (which are
    /// signed too) and exactly this `body`: `x-amz-date`, `authorization`, and
    /// `x-amz-security-token` for temporary credentials.
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>> {
        self.sign_at(
            &self.credentials()?,
            SystemTime::now(),
            method,
            url,
            headers,
            body,
        )
    }

    fn sign_at(
        &self,
        credentials: &Credentials,
        time: SystemTime,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>> {
        let identity = credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .context("SigV4 signing parameters")?
            .into();
        let request = SignableRequest::new(method, url, headers.iter().copied(), SignableBody::Bytes(body))
            .with_context(|| format!("cannot sign {method} {url}"))?;
        let (instructions, _signature) = sign(request, &params)
            .with_context(|| format!("cannot sign {method} {url}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }

    /// The credentials to sign with: loaded from the chain on first use, and
    /// again when they are about to expire.
    fn credentials(&self) -> Result<Credentials> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| anyhow!("the credential cache is poisoned"))?;
        if let Some(l) = loaded.as_mut() {
            let fresh = l
                .credentials
                .expiry()
                .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE);
            if !fresh {
                l.credentials = l
                    .runtime
                    .block_on(l.provider.provide_credentials())
                    .map_err(|e| self.no_credentials(e))?;
            }
            return Ok(l.credentials.clone());
        }
        // The chain is async; a runtime of one thread serves it, only here.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime that loads AWS credentials")?;
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(self.region.clone()))
                .load(),
        );
        let provider = config.credentials_provider().ok_or_else(|| {
            self.no_credentials(anyhow!("the AWS configuration has no credential provider"))
        })?;
        let credentials = runtime
            .block_on(provider.provide_credentials())
            .map_err(|e| self.no_credentials(e))?;
        *loaded = Some(Loaded {
            runtime,
            provider,
            credentials: credentials.clone(),
        });
        Ok(credentials)
    }

    fn no_credentials(&self, cause: impl Into<anyhow::Error>) -> anyhow::Error {
        // The chain's own error is terse ("the credential provider was not
        // enabled"); its sources say which providers were tried and why not.
        let cause = format!("{:#}", cause.into());
        anyhow!(
            "ocadm signs its requests to {} with SigV4 ({AUTH_VAR}=sigv4, or an *.amazonaws.com endpoint) but found \
             no AWS credentials; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
             AWS_SESSION_TOKEN for temporary credentials), or run where a role's credentials are available.\n\
             The AWS credential chain said: {cause}",
            self.host,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(mode: Option<&str>, region: Option<&str>, aws_region: Option<&str>) -> AuthEnv {
        AuthEnv {
            mode: mode.map(str::to_owned),
            region: region.map(str::to_owned),
            aws_region: aws_region.map(str::to_owned),
        }
    }

    fn sigv4(region: &str) -> Mode {
        Mode::SigV4 {
            region: region.into(),
        }
    }

    #[test]
    fn an_execute_api_endpoint_means_sigv4_in_the_region_of_its_host() {
        let none = AuthEnv::default();
        for (endpoint, region) in [
            (
                "https://a1b2c3d4e5.execute-api.us-west-2.amazonaws.com",
                "us-west-2",
            ),
            (
                "https://a1b2c3d4e5.execute-api.eu-central-1.amazonaws.com/",
                "eu-central-1",
            ),
            (
                "https://A1B2C3D4E5.Execute-Api.US-EAST-1.AmazonAWS.com:443/v1",
                "us-east-1",
            ),
            (
                "https://abc-vpce-0123.execute-api.ap-southeast-2.vpce.amazonaws.com",
                "ap-southeast-2",
            ),
            (
                "https://abc.execute-api.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
            ),
            (
                "https://abc.execute-api.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
        ] {
            assert_eq!(
                Mode::choose(endpoint, &none).unwrap(),
                sigv4(region),
                "{endpoint}"
            );
        }
        // The host's region wins over the variables.
        let other = env(None, Some("eu-west-1"), Some("eu-west-2"));
        assert_eq!(
            Mode::choose("https://x.execute-api.us-west-2.amazonaws.com", &other).unwrap(),
            sigv4("us-west-2")
        );
    }

    #[test]
    fn other_endpoints_use_the_token_unless_ocadm_auth_says_sigv4() {
        let none = AuthEnv::default();
        for endpoint in [
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "https://dm.example.com",
            "https://amazonaws.com.example.com",
            "http://[::1]:8080/",
        ] {
            assert_eq!(Mode::choose(endpoint, &none).unwrap(), Mode::Bearer, "{endpoint}");
        }
        // A custom domain in front of API Gateway: the region comes from a variable.
        let custom = "https://dm.example.com";
        assert_eq!(
            Mode::choose(custom, &env(Some("sigv4"), Some("eu-west-1"), Some("us-east-1"))).unwrap(),
            sigv4("eu-west-1")
        );
        assert_eq!(
            Mode::choose(custom, &env(Some("sigv4"), None, Some("us-east-1"))).unwrap(),
            sigv4("us-east-1")
        );
        // OCADM_AUTH=token keeps the token even for AWS.
        assert_eq!(
            Mode::choose(
                "https://x.execute-api.us-west-2.amazonaws.com",
                &env(Some("token"), None, None)
            )
            .unwrap(),
            Mode::Bearer
        );
    }

    #[test]
    fn a_bad_ocadm_auth_or_an_unknown_region_is_an_error_that_says_what_to_set() {
        let e = Mode::choose("http://127.0.0.1:1", &env(Some("iam"), None, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("OCADM_AUTH is \"iam\"") && e.contains("sigv4") && e.contains("token"),
            "{e}"
        );
        let e = Mode::choose("https://dm.example.com", &env(Some("sigv4"), None, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dm.example.com") && e.contains("set OCADM_REGION"),
            "{e}"
        );
        // An amazonaws.com host that is not execute-api's names no region either.
        let e = Mode::choose("https://example.s3.amazonaws.com", &AuthEnv::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("OCADM_REGION"), "{e}");
    }

    #[test]
    fn hosts_are_read_without_scheme_port_path_or_user() {
        for (url, host) in [
            ("http://127.0.0.1:8080/v1", "127.0.0.1"),
            ("https://user:pw@X.example.COM./", "x.example.com"),
            ("http://[::1]:80", "::1"),
            (
                "abc.execute-api.us-west-2.amazonaws.com",
                "abc.execute-api.us-west-2.amazonaws.com",
            ),
        ] {
            assert_eq!(host_of(url), host, "{url}");
        }
    }

    /// What signing adds: the date, the credential scope of execute-api in the
    /// signer's region, and the session token of temporary credentials. That
    /// the signature itself is right is checked in tests/e2e/sigv4.rs, by a
    /// verifier of its own that API Gateway's rules are held to.
    #[test]
    fn signing_adds_the_date_the_execute_api_scope_and_a_session_token() {
        let signer = Signer {
            region: "us-east-1".into(),
            host: "example.amazonaws.com".into(),
            loaded: Mutex::new(None),
        };
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let headers = signer
            .sign_at(
                &credentials,
                time,
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                &[],
                b"",
            )
            .unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        };
        assert_eq!(get("x-amz-date"), "20150830T123600Z");
        assert!(
            get("authorization").starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/execute-api/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature="
            ),
            "{}",
            get("authorization")
        );
        assert!(headers.iter().all(|(n, _)| n != "x-amz-security-token"));
        let with_token = Credentials::new("AKIDEXAMPLE", "secret", Some("the-token".into()), None, "test");
        let headers = signer
            .sign_at(
                &with_token,
                time,
                "GET",
                "https://example.amazonaws.com/",
                &[],
                b"",
            )
            .unwrap();
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "x-amz-security-token" && v == "the-token"),
            "{headers:?}"
        );
    }
}
