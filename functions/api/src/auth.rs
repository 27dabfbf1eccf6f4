//! Who is calling, and what they may do. The API knows callers in one of two
//! ways, chosen once at start by `OKERA_AUTH` ([`Auth`]):
//!
//! - `tokens` (the default; what dm-local runs): `Authorization: Bearer <token>`,
//!   looked up in the store, which keeps each token's name and role.
//! - `iam` (Lambda behind API Gateway's `AWS_IAM` authorizer): API Gateway has
//!   already checked the caller's SigV4 signature and hands the caller's ARN over
//!   in the request context (`requestContext.authorizer.iam.userArn`), which
//!   `lambda_http` puts in the request's extensions. `OKERA_IAM_ROLES` maps IAM
//!   roles (and so every session of them) and IAM users to roles ([`IamRoles`]).
//!
//! Either way the result is a [`Caller`], and one table, [`required_role`], says
//! which role each route needs: the same check for both modes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use axum::http::{header, Extensions, HeaderMap, Method};
use lambda_http::request::RequestContext;
use shared::store::{Role, Store};

use crate::extract::Caller;
use crate::ApiError;

/// The variable that picks the mode: `iam` or `tokens` (the default).
pub const AUTH_VAR: &str = "OKERA_AUTH";
/// The variable that maps IAM principals to roles in `iam` mode.
pub const IAM_ROLES_VAR: &str = "OKERA_IAM_ROLES";
/// The longest caller ARN the audit log records (`principal` columns).
pub const MAX_PRINCIPAL: usize = 512;

/// How the API knows its callers.
#[derive(Clone)]
pub enum Auth {
    /// Bearer tokens, looked up in the store.
    Tokens,
    /// The IAM caller of API Gateway's request context, mapped to a role.
    Iam(Arc<IamRoles>),
}

impl Auth {
    /// Reads `OKERA_AUTH` and `OKERA_IAM_ROLES`.
    pub fn from_env() -> Result<Auth, AuthConfigError> {
        let var = |name| std::env::var(name).ok();
        Auth::from_vars(var(AUTH_VAR).as_deref(), var(IAM_ROLES_VAR).as_deref())
    }

    /// The mode that these values of `OKERA_AUTH` and `OKERA_IAM_ROLES` ask for.
    /// An empty variable counts as unset.
    pub fn from_vars(mode: Option<&str>, roles: Option<&str>) -> Result<Auth, AuthConfigError> {
        let roles = roles.map(str::trim).filter(|r| !r.is_empty());
        match mode.map(str::trim).unwrap_or("") {
            "" | "tokens" => match roles {
                // Roles without IAM mode mean a deployment that forgot OKERA_AUTH:
                // every request would then be refused for want of a bearer token.
                Some(_) => Err(AuthConfigError::RolesWithoutIam),
                None => Ok(Auth::Tokens),
            },
            "iam" => {
                let roles = roles.ok_or(AuthConfigError::NoRoles)?;
                Ok(Auth::Iam(Arc::new(IamRoles::parse(roles)?)))
            }
            other => Err(AuthConfigError::UnknownMode(other.to_owned())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Auth::Tokens => "tokens",
            Auth::Iam(_) => "iam",
        }
    }

    /// The caller of a request with these headers and extensions, or the 401
    /// (or 403) that says why there is none. (Not the request itself: its body
    /// cannot be shared across the lookup's await.)
    pub(crate) async fn identify(
        &self,
        store: &Store,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> Result<Caller, ApiError> {
        match self {
            Auth::Tokens => from_token(store, headers).await,
            Auth::Iam(roles) => roles.caller(extensions.get::<RequestContext>()),
        }
    }

    /// Refuses, with a 403 that says what to do, a caller whose role is below
    /// what `method path` needs.
    pub(crate) fn authorize(&self, caller: &Caller, method: &Method, path: &str) -> Result<(), ApiError> {
        let needed = required_role(method, path);
        if caller.role >= needed {
            return Ok(());
        }
        let needs = match needed {
            Role::Admin => "the admin role".to_owned(),
            r => format!("the {} role or above", r.as_str()),
        };
        let (how, fix) = match self {
            Auth::Tokens => (
                "its token".to_owned(),
                match needed {
                    Role::Admin => "use an admin token".to_owned(),
                    _ => "use an operator or admin token".to_owned(),
                },
            ),
            Auth::Iam(_) => (
                format!("{IAM_ROLES_VAR} ({})", caller.granted_by),
                format!(
                    "map it to {} in {IAM_ROLES_VAR}, or call as a principal that has it",
                    needed.as_str()
                ),
            ),
        };
        Err(ApiError::forbidden(format!(
            "{} has the {} role from {how}, which may not {method} {path}: that needs {needs}; {fix}",
            caller.name,
            caller.role.as_str(),
        )))
    }
}

/// The role a request needs: every read is a viewer's; writes to the DM as a
/// whole (failovers, drills, the default version of new clusters) are an
/// admin's; every other write is an operator's. It goes by method and path
/// alone, before routing, so a write to a path that has no such route needs
/// the operator role before it gets its 404 or 405.
pub fn required_role(method: &Method, path: &str) -> Role {
    if *method == Method::GET || *method == Method::HEAD {
        return Role::Viewer;
    }
    match path {
        "/v1/failover" | "/v1/drills" | "/v1/settings/default-version" => Role::Admin,
        _ => Role::Operator,
    }
}

async fn from_token(store: &Store, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(ApiError::unauthenticated(
            "a bearer token is required: set OCADM_TOKEN (dm-local up prints one)",
        ));
    };
    match store.authenticate(token).await {
        Ok(Some((name, role))) => Ok(Caller {
            name,
            role,
            granted_by: "its token".into(),
        }),
        Ok(None) => Err(ApiError::unauthenticated("the bearer token is not known")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `OKERA_IAM_ROLES`, parsed: which IAM role or user has which role.
///
/// The format is `PRINCIPAL=ROLE` entries separated by commas, where PRINCIPAL
/// is an IAM role ARN (`arn:aws:iam::ACCOUNT:role/NAME`, with or without a
/// path) or an IAM user ARN (`arn:aws:iam::ACCOUNT:user/NAME`), and ROLE is
/// `viewer`, `operator` or `admin`. A role's entry covers every session of it:
/// the caller arrives as `arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`,
/// which has no path, so roles match on partition, account and name (IAM role
/// names are unique in an account whatever their path). A user's entry matches
/// that user's ARN. Names compare without regard to case, as IAM's do.
#[derive(Debug, Clone)]
pub struct IamRoles {
    grants: HashMap<Grantee, Grant>,
}

/// What an entry grants, and the entry's principal as written, for messages.
#[derive(Debug, Clone)]
struct Grant {
    role: Role,
    principal: String,
    index: usize,
}

/// What a caller is matched on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Grantee {
    /// An IAM role, and so its sessions.
    Role {
        partition: String,
        account: String,
        name: String,
    },
    /// An IAM user: its path and name.
    User {
        partition: String,
        account: String,
        path_and_name: String,
    },
}

impl IamRoles {
    /// Parses the value of `OKERA_IAM_ROLES`. Every entry must be right: the
    /// first one that is not is the error, which names it.
    pub fn parse(raw: &str) -> Result<IamRoles, AuthConfigError> {
        let mut grants: HashMap<Grantee, Grant> = HashMap::new();
        for (i, entry) in raw.split(',').enumerate() {
            let index = i + 1;
            let bad = |problem| AuthConfigError::BadEntry {
                index,
                entry: entry.trim().to_owned(),
                problem,
            };
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(bad(EntryProblem::Empty));
            }
            let Some((principal, role)) = entry.rsplit_once('=') else {
                return Err(bad(EntryProblem::NoRole));
            };
            let (principal, role) = (principal.trim(), role.trim());
            let role = Role::parse(role).ok_or_else(|| bad(EntryProblem::UnknownRole(role.to_owned())))?;
            let grantee = match Arn::parse(principal).map_err(bad)? {
                Arn::Role {
                    partition,
                    account,
                    name,
                    ..
                } => Grantee::Role {
                    partition,
                    account,
                    name: name.to_lowercase(),
                },
                Arn::User {
                    partition,
                    account,
                    path_and_name,
                } => Grantee::User {
                    partition,
                    account,
                    path_and_name: path_and_name.to_lowercase(),
                },
                Arn::Session { role, .. } => {
                    return Err(bad(EntryProblem::Session(role)));
                }
                Arn::Other(what) => return Err(bad(EntryProblem::NotRoleOrUser(what))),
            };
            if let Some(first) = grants.get(&grantee) {
                return Err(bad(EntryProblem::Duplicate {
                    first: first.index,
                    principal: first.principal.clone(),
                }));
            }
            grants.insert(
                grantee,
                Grant {
                    role,
                    principal: principal.to_owned(),
                    index,
                },
            );
        }
        Ok(IamRoles { grants })
    }

    /// How many principals have a role.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The role of the caller with this ARN, and the entry that grants it.
    pub fn role_of(&self, caller_arn: &str) -> Result<(Role, &str), Unmapped> {
        let grantee = match Arn::parse(caller_arn) {
            Ok(Arn::Session {
                partition,
                account,
                role,
            }) => Grantee::Role {
                partition: partition.clone(),
                account: account.clone(),
                name: role.to_lowercase(),
            },
            Ok(Arn::Role {
                partition,
                account,
                name,
                ..
            }) => Grantee::Role {
                partition,
                account,
                name: name.to_lowercase(),
            },
            Ok(Arn::User {
                partition,
                account,
                path_and_name,
            }) => Grantee::User {
                partition,
                account,
                path_and_name: path_and_name.to_lowercase(),
            },
            Ok(Arn::Other(_)) | Err(_) => return Err(Unmapped::NotMappable),
        };
        match self.grants.get(&grantee) {
            Some(g) => Ok((g.role, g.principal.as_str())),
            None => Err(Unmapped::Missing {
                entry: match grantee {
                    Grantee::Role {
                        partition, account, ..
                    } => {
                        // The session's ARN keeps the role name as IAM has it.
                        let name = caller_arn
                            .split_once(":assumed-role/")
                            .and_then(|(_, rest)| rest.split('/').next())
                            .or_else(|| caller_arn.rsplit('/').next())
                            .unwrap_or_default();
                        format!("arn:{partition}:iam::{account}:role/{name}")
                    }
                    Grantee::User { .. } => caller_arn.to_owned(),
                },
            }),
        }
    }

    /// The caller of a request that API Gateway's IAM authorizer let through.
    fn caller(&self, context: Option<&RequestContext>) -> Result<Caller, ApiError> {
        let arn = caller_arn(context)?;
        if arn.len() > MAX_PRINCIPAL {
            return Err(ApiError::forbidden(format!(
                "the caller's ARN is {} characters long, more than the {MAX_PRINCIPAL} the audit log records: {}…",
                arn.len(),
                &arn[..arn.char_indices().nth(80).map_or(arn.len(), |(i, _)| i)]
            )));
        }
        match self.role_of(arn) {
            Ok((role, principal)) => Ok(Caller {
                name: arn.to_owned(),
                role,
                granted_by: format!("{principal}={}", role.as_str()),
            }),
            Err(Unmapped::Missing { entry }) => Err(ApiError::forbidden(format!(
                "{arn} has no role in this DM: add {entry}=viewer (or operator, or admin) to {IAM_ROLES_VAR}, \
                 the stack's IamRoles parameter"
            ))),
            Err(Unmapped::NotMappable) => Err(ApiError::forbidden(format!(
                "{arn} has no role in this DM, and cannot have one: {IAM_ROLES_VAR} gives roles to IAM roles \
                 (and their sessions) and IAM users only; call as one of those"
            ))),
        }
    }
}

/// Why a caller has no role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    /// No entry names it; `entry` is the principal an entry would name.
    Missing { entry: String },
    /// It is neither an IAM role's session nor an IAM user (the account's root
    /// user, a federated user, a service).
    NotMappable,
}

/// `requestContext.authorizer.iam.userArn`, or the 401 that names what is
/// missing.
fn caller_arn(context: Option<&RequestContext>) -> Result<&str, ApiError> {
    const FIELD: &str = "requestContext.authorizer.iam.userArn";
    let hint = "the API runs with OKERA_AUTH=iam and only answers requests that API Gateway's AWS_IAM \
                authorizer let through: sign them with SigV4 (ocadm does for an execute-api endpoint)";
    let Some(context) = context else {
        return Err(ApiError::unauthenticated(format!(
            "no IAM caller: the request has no API Gateway request context, so no {FIELD}; {hint}"
        )));
    };
    // Only the HTTP API (payload 2.0) context carries the IAM authorizer's
    // caller; `lambda_http` is built with that event type alone, so the `let`
    // may be irrefutable.
    #[allow(irrefutable_let_patterns)]
    let iam = if let RequestContext::ApiGatewayV2(ctx) = context {
        ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref())
    } else {
        None
    };
    let Some(iam) = iam else {
        return Err(ApiError::unauthenticated(format!(
            "no IAM caller: the request context has no authorizer.iam, so no {FIELD}; is the route's \
             authorizer AWS_IAM? {hint}"
        )));
    };
    iam.user_arn
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated(format!(
                "no IAM caller: the IAM authorizer's context has no {FIELD}; {hint}"
            ))
        })
}

/// The ARNs that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arn {
    /// `arn:P:iam::A:role/PATH/NAME`.
    Role {
        partition: String,
        account: String,
        name: String,
    },
    /// `arn:P:iam::A:user/PATH/NAME`.
    User {
        partition: String,
        account: String,
        path_and_name: String,
    },
    /// `arn:P:sts::A:assumed-role/ROLE/SESSION`: a session of a role.
    Session {
        partition: String,
        account: String,
        role: String,
    },
    /// Another IAM or STS principal, such as `root` or `federated-user/NAME`.
    Other(String),
}

impl Arn {
    fn parse(raw: &str) -> Result<Arn, EntryProblem> {
        if raw.contains(['*', '?']) {
            return Err(EntryProblem::Wildcard);
        }
        let parts: Vec<&str> = raw.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(EntryProblem::NotAnArn);
        };
        if arn != "arn" {
            return Err(EntryProblem::NotAnArn);
        }
        let partition_ok = partition == "aws"
            || partition.strip_prefix("aws-").is_some_and(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !partition_ok {
            return Err(EntryProblem::BadPartition(partition.to_owned()));
        }
        if service != "iam" && service != "sts" {
            return Err(EntryProblem::NotIam(service.to_owned()));
        }
        if !region.is_empty() {
            return Err(EntryProblem::Region(region.to_owned()));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EntryProblem::BadAccount(account.to_owned()));
        }
        let (partition, account) = (partition.to_owned(), account.to_owned());
        let (kind, rest) = resource.split_once('/').unwrap_or((resource, ""));
        match (service, kind) {
            ("iam", "role") | ("iam", "user") => {
                let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
                check_name(name)?;
                if !path.is_empty()
                    && path
                        .split('/')
                        .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return Err(EntryProblem::BadPath(path.to_owned()));
                }
                Ok(if kind == "role" {
                    Arn::Role {
                        partition,
                        account,
                        name: name.to_owned(),
                    }
                } else {
                    Arn::User {
                        partition,
                        account,
                        path_and_name: rest.to_owned(),
                    }
                })
            }
            ("sts", "assumed-role") => {
                let Some((role, session)) = rest.split_once('/') else {
                    return Err(EntryProblem::NotAnArn);
                };
                check_name(role)?;
                if session.is_empty() {
                    return Err(EntryProblem::NotAnArn);
                }
                Ok(Arn::Session {
                    partition,
                    account,
                    role: role.to_owned(),
                })
            }
            _ => Ok(Arn::Other(format!("{service} {kind}"))),
        }
    }
}

/// IAM's rule for role and user names: 1 to 64 of letters, digits and `+=,.@_-`.
fn check_name(name: &str) -> Result<(), EntryProblem> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EntryProblem::BadName(name.to_owned()))
    }
}

/// A configuration of the API's authentication that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("{AUTH_VAR} is {0:?}; set it to iam (behind API Gateway's AWS_IAM authorizer) or tokens (the default)")]
    UnknownMode(String),
    #[error(
        "{IAM_ROLES_VAR} is not set: with {AUTH_VAR}=iam it must give IAM principals their roles, such as \
         arn:aws:iam::123456789012:role/dm-admins=admin,arn:aws:iam::123456789012:role/oncall=operator"
    )]
    NoRoles,
    #[error(
        "{IAM_ROLES_VAR} is set but {AUTH_VAR} is not iam, so it would be ignored and every request would \
         need a bearer token; set {AUTH_VAR}=iam, or unset {IAM_ROLES_VAR}"
    )]
    RolesWithoutIam,
    #[error("{IAM_ROLES_VAR} entry {index} ({entry:?}): {problem}")]
    BadEntry {
        index: usize,
        entry: String,
        problem: EntryProblem,
    },
}

/// What is wrong with one entry of `OKERA_IAM_ROLES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    Empty,
    NoRole,
    UnknownRole(String),
    NotAnArn,
    Wildcard,
    BadPartition(String),
    NotIam(String),
    Region(String),
    BadAccount(String),
    BadName(String),
    BadPath(String),
    Session(String),
    NotRoleOrUser(String),
    Duplicate { first: usize, principal: String },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const EXAMPLE: &str = "arn:aws:iam::123456789012:role/oncall=operator";
        match self {
            EntryProblem::Empty => write!(f, "is empty: remove the extra comma"),
            EntryProblem::NoRole => write!(f, "has no role: write PRINCIPAL=ROLE, such as {EXAMPLE}"),
            EntryProblem::UnknownRole(r) => write!(f, "{r:?} is not a role: use viewer, operator or admin"),
            EntryProblem::NotAnArn => write!(
                f,
                "the principal is not an IAM role or user ARN: write one such as {EXAMPLE}"
            ),
            EntryProblem::Wildcard => write!(f, "wildcards are not supported: list each role or user"),
            EntryProblem::BadPartition(p) => write!(f, "{p:?} is not an AWS partition (aws, aws-cn, aws-us-gov, ...)"),
            EntryProblem::NotIam(s) => write!(
                f,
                "the principal is an ARN of service {s:?}: only IAM roles and users (arn:aws:iam::...) can have a role"
            ),
            EntryProblem::Region(r) => write!(f, "an IAM ARN has no region, but this one has {r:?}"),
            EntryProblem::BadAccount(a) => write!(f, "the account {a:?} is not 12 digits"),
            EntryProblem::BadName(n) => write!(
                f,
                "{n:?} is not an IAM name: 1 to 64 letters, digits and +=,.@_- (names that contain a comma cannot be listed)"
            ),
            EntryProblem::BadPath(p) => write!(f, "{p:?} is not an IAM path"),
            EntryProblem::Session(role) => write!(
                f,
                "is a session of role {role} (sts assumed-role): map the role itself, \
                 arn:aws:iam::ACCOUNT:role/{role}, which covers all of its sessions"
            ),
            EntryProblem::NotRoleOrUser(what) => write!(
                f,
                "only IAM roles and users can have a role, not the {what} principal"
            ),
            EntryProblem::Duplicate { first, principal } => write!(
                f,
                "names the same principal as entry {first} ({principal}); keep one of them"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    fn roles(raw: &str) -> IamRoles {
        IamRoles::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    /// Parses `raw`, which must fail, and checks that the message names every
    /// one of `mentions`.
    fn refused(raw: &str, mentions: &[&str]) {
        let e = IamRoles::parse(raw)
            .err()
            .unwrap_or_else(|| panic!("{raw:?} was accepted"))
            .to_string();
        assert!(e.starts_with("OKERA_IAM_ROLES entry "), "{raw:?}: {e}");
        for m in mentions {
            assert!(e.contains(m), "{raw:?}: the message does not mention {m:?}: {e}");
        }
    }

    #[test]
    fn a_role_entry_matches_every_session_of_that_role_and_the_role_itself() {
        let r = roles(&format!(
            "arn:aws:iam::{ACCOUNT}:role/dm-admins=admin, arn:aws:iam::{ACCOUNT}:role/ops/teams/oncall=operator"
        ));
        assert_eq!(r.len(), 2);
        let check = |caller: &str, role: Role, entry: &str| {
            assert_eq!(r.role_of(caller), Ok((role, entry)), "{caller}");
        };
        let admins = format!("arn:aws:iam::{ACCOUNT}:role/dm-admins");
        check(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/dm-admins/alice"),
            Role::Admin,
            &admins,
        );
        check(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/DM-Admins/bob@example.com"),
            Role::Admin,
            &admins,
        );
        check(&admins, Role::Admin, &admins);
        // The session's ARN has no path; the role's entry has one.
        let oncall = format!("arn:aws:iam::{ACCOUNT}:role/ops/teams/oncall");
        check(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/oncall/i-0abc"),
            Role::Operator,
            &oncall,
        );
    }

    #[test]
    fn a_session_of_a_role_of_another_account_or_partition_or_name_has_no_role() {
        let r = roles(&format!("arn:aws:iam::{ACCOUNT}:role/dm-admins=admin"));
        for caller in [
            "arn:aws:sts::210987654321:assumed-role/dm-admins/alice",
            "arn:aws-cn:sts::123456789012:assumed-role/dm-admins/alice",
            "arn:aws:sts::123456789012:assumed-role/dm-admins-old/alice",
            "arn:aws:sts::123456789012:assumed-role/dm-admin/alice",
        ] {
            assert!(
                matches!(r.role_of(caller), Err(Unmapped::Missing { .. })),
                "{caller}"
            );
        }
        assert_eq!(
            r.role_of("arn:aws:sts::123456789012:assumed-role/oncall/alice"),
            Err(Unmapped::Missing {
                entry: "arn:aws:iam::123456789012:role/oncall".into()
            })
        );
    }

    #[test]
    fn a_user_entry_matches_that_user_only() {
        let r = roles(&format!(
            "arn:aws:iam::{ACCOUNT}:user/bob=viewer,arn:aws:iam::{ACCOUNT}:user/division/carol=operator"
        ));
        assert_eq!(
            r.role_of(&format!("arn:aws:iam::{ACCOUNT}:user/bob"))
                .map(|(r, _)| r),
            Ok(Role::Viewer)
        );
        assert_eq!(
            r.role_of(&format!("arn:aws:iam::{ACCOUNT}:user/division/carol"))
                .map(|(r, _)| r),
            Ok(Role::Operator)
        );
        for caller in [
            format!("arn:aws:iam::{ACCOUNT}:user/bobby"),
            format!("arn:aws:iam::{ACCOUNT}:user/other/carol"),
            // A role named like the user is not the user.
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/bob/s"),
        ] {
            assert!(
                matches!(r.role_of(&caller), Err(Unmapped::Missing { .. })),
                "{caller}"
            );
        }
    }

    #[test]
    fn the_root_user_a_federated_user_or_garbage_cannot_have_a_role() {
        let r = roles(&format!("arn:aws:iam::{ACCOUNT}:role/dm-admins=admin"));
        for caller in [
            format!("arn:aws:iam::{ACCOUNT}:root"),
            format!("arn:aws:sts::{ACCOUNT}:federated-user/alice"),
            "AIDAEXAMPLE".to_owned(),
            "arn:aws:sts::12345:assumed-role/dm-admins/alice".to_owned(),
        ] {
            assert_eq!(r.role_of(&caller), Err(Unmapped::NotMappable), "{caller}");
        }
    }

    #[test]
    fn every_bad_entry_is_refused_with_a_message_naming_it_and_what_is_wrong() {
        let role = |s: &str| format!("arn:aws:iam::{ACCOUNT}:role/{s}");
        refused(&format!("{}=admin,", role("a")), &["entry 2", "empty"]);
        refused(
            &format!("{}=admin,,{}=viewer", role("a"), role("b")),
            &["entry 2", "empty"],
        );
        refused(&role("a"), &["entry 1", "has no role", "PRINCIPAL=ROLE"]);
        refused(
            &format!("{}=root", role("a")),
            &["\"root\" is not a role", "viewer, operator or admin"],
        );
        refused(&format!("{}=Admin", role("a")), &["\"Admin\" is not a role"]);
        refused(&format!("{}=", role("a")), &["\"\" is not a role"]);
        refused("dm-admins=admin", &["dm-admins", "not an IAM role or user ARN"]);
        refused(&format!("{}=admin", role("dm-*")), &["wildcards"]);
        refused(&format!("arn:aws:iam::{ACCOUNT}:role/*=admin"), &["wildcards"]);
        refused("arn:aws:iam::12345:role/a=admin", &["\"12345\" is not 12 digits"]);
        refused("arn:aws:iam::1234567890123:role/a=admin", &["is not 12 digits"]);
        refused(
            &format!("arn:gcp:iam::{ACCOUNT}:role/a=admin"),
            &["\"gcp\" is not an AWS partition"],
        );
        refused(
            &format!("arn:aws:s3::{ACCOUNT}:role/a=admin"),
            &["service \"s3\""],
        );
        refused(
            &format!("arn:aws:iam:us-east-1:{ACCOUNT}:role/a=admin"),
            &["no region", "us-east-1"],
        );
        refused(&format!("{}=admin", role("")), &["\"\" is not an IAM name"]);
        refused(
            &format!("{}=admin", role(&"x".repeat(65))),
            &["is not an IAM name"],
        );
        refused(&format!("{}=admin", role("a b")), &["\"a b\" is not an IAM name"]);
        refused(&format!("{}=admin", role("ops//a")), &["not an IAM path"]);
        refused(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/oncall/alice=operator"),
            &["session of role oncall", "arn:aws:iam::ACCOUNT:role/oncall"],
        );
        refused(
            &format!("arn:aws:iam::{ACCOUNT}:root=admin"),
            &["not the iam root principal"],
        );
        refused(&format!("arn:aws:iam::{ACCOUNT}:group/admins=admin"), &["group"]);
        // The same role twice, even with another path or case, or the same role.
        refused(
            &format!("{}=admin,{}=viewer", role("ops"), role("team/OPS")),
            &["entry 2", "same principal as entry 1", &role("ops")],
        );
        refused(
            &format!("{}=admin,{}=admin", role("ops"), role("ops")),
            &["entry 2", "entry 1"],
        );
    }

    #[test]
    fn names_may_hold_equals_signs_and_the_role_is_what_follows_the_last_one() {
        let r = roles(&format!("arn:aws:iam::{ACCOUNT}:role/team=data=operator"));
        assert_eq!(
            r.role_of(&format!("arn:aws:sts::{ACCOUNT}:assumed-role/team=data/s"))
                .map(|(r, _)| r),
            Ok(Role::Operator)
        );
    }

    #[test]
    fn the_mode_is_tokens_by_default_and_iam_needs_its_roles() {
        assert!(matches!(Auth::from_vars(None, None), Ok(Auth::Tokens)));
        assert!(matches!(Auth::from_vars(Some(""), Some("  ")), Ok(Auth::Tokens)));
        assert!(matches!(Auth::from_vars(Some("tokens"), None), Ok(Auth::Tokens)));
        let iam = Auth::from_vars(
            Some("iam"),
            Some(&format!("arn:aws:iam::{ACCOUNT}:user/bob=viewer")),
        );
        assert!(matches!(&iam, Ok(Auth::Iam(r)) if r.len() == 1));
        let message = |mode: Option<&str>, roles: Option<&str>| {
            Auth::from_vars(mode, roles)
                .err()
                .unwrap_or_else(|| panic!("{mode:?} {roles:?} was accepted"))
                .to_string()
        };
        let e = message(Some("iam"), None);
        assert!(
            e.starts_with("OKERA_IAM_ROLES is not set") && e.contains("OKERA_AUTH=iam"),
            "{e}"
        );
        assert!(message(Some("iam"), Some(" ")).starts_with("OKERA_IAM_ROLES is not set"));
        let e = message(Some("IAM"), None);
        assert!(
            e.contains("OKERA_AUTH is \"IAM\"") && e.contains("iam") && e.contains("tokens"),
            "{e}"
        );
        let e = message(Some("sigv4"), None);
        assert!(e.contains("\"sigv4\""), "{e}");
        let e = message(None, Some(&format!("arn:aws:iam::{ACCOUNT}:user/bob=viewer")));
        assert!(
            e.contains("OKERA_IAM_ROLES is set but OKERA_AUTH is not iam"),
            "{e}"
        );
        let e = message(Some("iam"), Some("bob=viewer"));
        assert!(e.starts_with("OKERA_IAM_ROLES entry 1 (\"bob=viewer\")"), "{e}");
    }

    #[test]
    fn reads_need_a_viewer_fleet_wide_writes_an_admin_and_other_writes_an_operator() {
        let check = |method: Method, path: &str, role: Role| {
            assert_eq!(required_role(&method, path), role, "{method} {path}");
        };
        for path in [
            "/v1/status",
            "/v1/failover",
            "/v1/drills",
            "/v1/settings/default-version",
            "/v1/nowhere",
        ] {
            check(Method::GET, path, Role::Viewer);
            check(Method::HEAD, path, Role::Viewer);
        }
        check(Method::POST, "/v1/failover", Role::Admin);
        check(Method::POST, "/v1/drills", Role::Admin);
        check(Method::PUT, "/v1/settings/default-version", Role::Admin);
        check(Method::DELETE, "/v1/drills", Role::Admin);
        for (method, path) in [
            (Method::POST, "/v1/environments"),
            (Method::DELETE, "/v1/environments/1"),
            (Method::POST, "/v1/clusters"),
            (Method::PATCH, "/v1/clusters/1"),
            (Method::DELETE, "/v1/clusters/1"),
            (Method::POST, "/v1/clusters/1/diagnostics"),
            (Method::POST, "/v1/clusters/1/upgrade"),
            (Method::POST, "/v1/clusters/1/rollback"),
            (Method::POST, "/v1/clusters/1/restart"),
            (Method::POST, "/v1/operations/1/cancel"),
            (Method::POST, "/v1/failovers"),
            (Method::POST, "/v1/nowhere"),
        ] {
            check(method, path, Role::Operator);
        }
    }
}
