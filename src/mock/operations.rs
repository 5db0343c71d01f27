//! The protected operations: which scopes and which authentication schemes each
//! `method path-template` accepts, found for a request path with `matchit`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use http::Method;
use http::header::{AUTHORIZATION, HeaderMap};

use super::config::OperationConfig;
// The catalogue's own reading of a path, so that both route a request alike.
use crate::scope::routes::read_path;

/// Every operation of Infobip's OpenAPI specification 3.210.0, one per line after the header:
/// spec file, method, path template, operationId, scopes (any one grants), schemes.
const ALL_OPERATIONS_TSV: &str = include_str!("../../data/x_scopes_by_operation.tsv");

/// The operations a fresh [`MockConfig`](super::MockConfig) protects.
const DEFAULT_OPERATIONS: [(&str, &str, &str, &str); 4] = [
    (
        "POST",
        "/sms/2/text/advanced",
        "message:send,sms:message:send,sms:manage",
        "IBSSOTokenHeader,APIKeyHeader,Basic,OAuth2",
    ),
    (
        "GET",
        "/sms/1/inbox/reports",
        "inbound-message:read,sms:inbound-message:read,sms:manage",
        "IBSSOTokenHeader,APIKeyHeader,Basic,OAuth2",
    ),
    (
        "GET",
        "/settings/2/api-keys",
        "account-management:manage",
        "IBSSOTokenHeader,Basic,OAuth2",
    ),
    (
        "POST",
        "/settings/2/api-keys",
        "account-management:manage",
        "IBSSOTokenHeader,Basic,OAuth2",
    ),
];

/// An authentication scheme, by the word that starts the `Authorization` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Scheme {
    /// `App <api key>` (OpenAPI `APIKeyHeader`).
    App,
    /// `Basic <base64 user:password>`.
    Basic,
    /// `IBSSO <session or Exchange token>` (OpenAPI `IBSSOTokenHeader`).
    Ibsso,
    /// `Bearer <OAuth 2.0 access token>` (OpenAPI `OAuth2`).
    Bearer,
}

impl Scheme {
    /// The header word, which is also the key in
    /// [`Counters::resource_requests_by_scheme`](super::Counters::resource_requests_by_scheme).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::App => "App",
            Scheme::Basic => "Basic",
            Scheme::Ibsso => "IBSSO",
            Scheme::Bearer => "Bearer",
        }
    }

    /// Reads the header word, case-insensitively as RFC 9110 §11.1 asks.
    pub(crate) fn from_header_word(word: &str) -> Option<Self> {
        [Scheme::App, Scheme::Basic, Scheme::Ibsso, Scheme::Bearer]
            .into_iter()
            .find(|scheme| scheme.as_str().eq_ignore_ascii_case(word))
    }

    /// The scheme and credentials of the `Authorization` header, if there is exactly one (the
    /// field is single-valued, RFC 9110 §11.6.2) and it has a known scheme.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<(Self, &str)> {
        let mut values = headers.get_all(AUTHORIZATION).into_iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return None;
        };
        let (word, credentials) = value.to_str().ok()?.trim().split_once(' ')?;
        Some((Self::from_header_word(word)?, credentials.trim()))
    }

    /// Reads a scheme as the OpenAPI specification or the header names it.
    fn from_config_name(name: &str) -> Option<Self> {
        let spec = match name.to_ascii_lowercase().as_str() {
            "apikeyheader" => Some(Scheme::App),
            "ibssotokenheader" => Some(Scheme::Ibsso),
            "oauth2" => Some(Scheme::Bearer),
            _ => None,
        };
        spec.or_else(|| Self::from_header_word(name))
    }
}

/// What one `method path-template` requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Operation {
    /// The path template as configured, e.g. `/sms/1/reports/{id}`.
    pub(crate) template: String,
    /// Any one of these grants access; empty means any valid credential does.
    pub(crate) scopes: BTreeSet<String>,
    /// The schemes accepted; empty means any, or with no scopes either, that the operation is
    /// public.
    pub(crate) schemes: BTreeSet<Scheme>,
}

impl Operation {
    /// Whether the operation needs no credential at all.
    pub(crate) fn is_public(&self) -> bool {
        self.schemes.is_empty() && self.scopes.is_empty()
    }
}

/// What a path lookup found.
pub(crate) enum Lookup<'a> {
    /// The operation for this method and path.
    Found(&'a Operation),
    /// The path is known, but not with this method.
    MethodNotAllowed,
    /// No operation has this path.
    NotFound,
}

/// The table of protected operations, routed by method and path.
pub(crate) struct Operations {
    /// Every routed path, whatever its methods: to tell `405` from `404`.
    router: matchit::Router<usize>,
    /// Per method, the paths it has: routed apart, as the scope catalogue routes them, so that
    /// `PUT /a/b` finds `PUT /a/{id}` even where `/a/b` has only other methods.
    by_method: BTreeMap<String, matchit::Router<usize>>,
    /// Per routed path: method → operation.
    paths: Vec<BTreeMap<String, Operation>>,
}

impl Operations {
    /// Builds the table: the defaults, then (if asked) every operation of the specification,
    /// then the configured ones, each later one replacing an earlier one with the same method
    /// and path.
    ///
    /// # Errors
    /// `InvalidInput` when a template cannot be routed or a scheme is unknown.
    pub(crate) fn build(all: bool, added: &[OperationConfig]) -> io::Result<Self> {
        let mut table: BTreeMap<String, BTreeMap<String, Operation>> = BTreeMap::new();
        let mut add = |method: &str, template: &str, scopes: &str, schemes: &str| {
            let operation = Operation {
                template: template.to_owned(),
                scopes: split_list(scopes).map(str::to_owned).collect(),
                schemes: split_list(schemes)
                    .map(|name| {
                        Scheme::from_config_name(name).ok_or_else(|| {
                            invalid(format!("unknown authentication scheme {name:?}"))
                        })
                    })
                    .collect::<io::Result<_>>()?,
            };
            table
                .entry(route_key(template)?)
                .or_default()
                .insert(method.to_ascii_uppercase(), operation);
            Ok::<(), io::Error>(())
        };
        for (method, template, scopes, schemes) in DEFAULT_OPERATIONS {
            add(method, template, scopes, schemes)?;
        }
        if all {
            for line in ALL_OPERATIONS_TSV.lines().skip(1) {
                let fields: Vec<&str> = line.split('\t').collect();
                if let [_, method, template, _, scopes, schemes] = fields[..] {
                    add(method, template, scopes, schemes)?;
                }
            }
        }
        for op in added {
            add(
                op.method.as_str(),
                &op.path_template,
                &op.scopes,
                &op.schemes,
            )?;
        }

        let mut router = matchit::Router::new();
        let mut by_method: BTreeMap<String, matchit::Router<usize>> = BTreeMap::new();
        let mut paths = Vec::with_capacity(table.len());
        for (key, methods) in table {
            let cannot_route =
                |err: matchit::InsertError| invalid(format!("cannot route {key:?}: {err}"));
            router
                .insert(key.clone(), paths.len())
                .map_err(cannot_route)?;
            for method in methods.keys() {
                (by_method.entry(method.clone()).or_default())
                    .insert(key.clone(), paths.len())
                    .map_err(cannot_route)?;
            }
            paths.push(methods);
        }
        Ok(Self {
            router,
            by_method,
            paths,
        })
    }

    /// How many `method path` operations the table holds.
    pub(crate) fn len(&self) -> usize {
        self.paths.iter().map(BTreeMap::len).sum()
    }

    /// The operation for a request, its path read as the crate's scope catalogue reads it
    /// ([`read_path`]): a percent-encoded unreserved character is that character (RFC 3986
    /// §6.2.2.2), `.` and `..` segments are resolved (§5.2.4), a parameter never matches an
    /// empty segment, and a trailing slash is ignored when the path has no operation for the
    /// method with it. `HEAD` is answered as `GET` where no `HEAD` is configured (RFC 9110
    /// §9.3.2).
    pub(crate) fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Some(path) = read_path(path) else {
            return Lookup::NotFound;
        };
        let without_slash = path.strip_suffix('/').filter(|rest| !rest.is_empty());
        let mut lookup = Lookup::NotFound;
        for path in std::iter::once(path.as_ref()).chain(without_slash) {
            match self.at(method, path) {
                Lookup::Found(operation) => return Lookup::Found(operation),
                Lookup::MethodNotAllowed => lookup = Lookup::MethodNotAllowed,
                Lookup::NotFound => {}
            }
        }
        lookup
    }

    /// The methods `path` has, as a `405`'s `Allow` header lists them (RFC 9110 §15.5.6):
    /// every method the lookup finds an operation for, and `HEAD` where it finds `GET`.
    pub(crate) fn allowed(&self, path: &str) -> String {
        let mut allowed = BTreeSet::new();
        for name in self.by_method.keys() {
            let Ok(method) = Method::from_bytes(name.as_bytes()) else {
                continue;
            };
            if matches!(self.lookup(&method, path), Lookup::Found(_)) {
                allowed.insert(name.as_str());
                if method == Method::GET {
                    allowed.insert("HEAD");
                }
            }
        }
        allowed.into_iter().collect::<Vec<_>>().join(", ")
    }

    /// The operation for `method` at `path` as written.
    fn at(&self, method: &Method, path: &str) -> Lookup<'_> {
        let routed = |router: &matchit::Router<usize>| {
            let found = router.at(path).ok()?;
            let no_empty_parameter = found.params.iter().all(|(_, value)| !value.is_empty());
            no_empty_parameter.then_some(*found.value)
        };
        let operation = |method: &Method| {
            let index = routed(self.by_method.get(method.as_str())?)?;
            self.paths.get(index)?.get(method.as_str())
        };
        let found = operation(method).or_else(|| {
            (method == Method::HEAD)
                .then(|| operation(&Method::GET))
                .flatten()
        });
        match found {
            Some(operation) => Lookup::Found(operation),
            None if routed(&self.router).is_some() => Lookup::MethodNotAllowed,
            None => Lookup::NotFound,
        }
    }
}

/// Splits a list written with commas and/or white space.
fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
}

/// The route `matchit` stores for a template: parameters renamed by position (`{p0}`, `{p1}`)
/// so that `/a/{id}` and `/a/{key}/b` do not conflict over the parameter's name.
fn route_key(template: &str) -> io::Result<String> {
    if !template.starts_with('/') {
        return Err(invalid(format!(
            "path template {template:?} must start with `/`"
        )));
    }
    let mut key = String::with_capacity(template.len());
    let mut params = 0;
    for (i, segment) in template.split('/').enumerate() {
        if i > 0 {
            key.push('/');
        }
        let is_param = segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}');
        if is_param {
            key.push_str(&format!("{{p{params}}}"));
            params += 1;
        } else if segment.contains(['{', '}', '*']) {
            return Err(invalid(format!(
                "path template {template:?}: a parameter must fill a whole segment"
            )));
        } else {
            key.push_str(segment);
        }
    }
    Ok(key)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_every_operation_of_the_specification() -> io::Result<()> {
        let table = Operations::build(true, &[])?;
        assert_eq!(table.len(), 943);
        Ok(())
    }

    #[test]
    fn routes_templates_and_reports_methods() -> io::Result<()> {
        let table = Operations::build(true, &[])?;
        let Lookup::Found(op) = table.lookup(&Method::GET, "/2fa/2/applications/ABC123") else {
            panic!("not routed");
        };
        assert_eq!(op.template, "/2fa/2/applications/{appId}");
        assert!(op.scopes.contains("2fa:manage"));
        assert!(matches!(
            table.lookup(&Method::PATCH, "/sms/2/text/advanced"),
            Lookup::MethodNotAllowed
        ));
        assert!(matches!(
            table.lookup(&Method::GET, "/nowhere"),
            Lookup::NotFound
        ));
        Ok(())
    }

    /// Every operation, its parameters filled, as written, with a trailing slash, with a
    /// doubled slash, with an empty parameter, with an encoded letter and with dot segments
    /// (plain and encoded, some leading to another operation or above the root): the mock
    /// finds the operation the scope catalogue finds, or none when it finds none.
    #[test]
    fn reads_paths_as_the_scope_catalogue_does() -> io::Result<()> {
        let table = Operations::build(true, &[])?;
        let catalog = crate::Catalog::infobip();
        let mut checked = 0;
        for op in catalog.operations() {
            let path = filled(op.template);
            let last = path.rsplit('/').next().unwrap_or_default();
            let empty_parameter = path.replace("/p1", "/");
            let paths = [
                format!("{path}/"),
                format!("{path}//"),
                path.replacen('/', "//", 2),
                empty_parameter.clone(),
                format!("{empty_parameter}/"),
                path.replacen('s', "%73", 1),
                path.clone(),
                path.replacen('/', "/./", 2),
                path.replacen('/', "/x/../", 1),
                format!("/..{path}"),
                format!("{path}/.."),
                format!("{path}/../."),
                format!("{path}/%2E%2e/{last}"),
                format!("{path}/../../{last}"),
            ];
            for path in &paths {
                let expected = catalog.lookup(op.method, path).map(|found| found.template);
                let found = match table.lookup(op.method, path) {
                    Lookup::Found(found) => Some(found.template.as_str()),
                    Lookup::MethodNotAllowed | Lookup::NotFound => None,
                };
                assert_eq!(found, expected, "{} {path}", op.method);
                checked += 1;
            }
        }
        assert_eq!(checked, 943 * 14);
        Ok(())
    }

    /// `template` with every parameter filled with `p1`.
    fn filled(template: &str) -> String {
        let segments: Vec<&str> = (template.split('/'))
            .map(|segment| {
                if segment.starts_with('{') {
                    "p1"
                } else {
                    segment
                }
            })
            .collect();
        segments.join("/")
    }

    /// For every operation's path, a `405` lists the methods the scope catalogue finds an
    /// operation for there, `HEAD` where `GET` is, the operation's own among them.
    #[test]
    fn allows_the_methods_the_scope_catalogue_finds() -> io::Result<()> {
        let table = Operations::build(true, &[])?;
        let catalog = crate::Catalog::infobip();
        let methods = [
            Method::DELETE,
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PATCH,
            Method::POST,
            Method::PUT,
        ];
        for op in catalog.operations() {
            let path = filled(op.template);
            let expected: Vec<&str> = (methods.iter())
                .filter(|method| catalog.lookup(method, &path).is_some())
                .map(Method::as_str)
                .collect();
            let allowed = table.allowed(&path);
            assert_eq!(allowed, expected.join(", "), "{path}");
            assert!(
                allowed
                    .split(", ")
                    .any(|method| method == op.method.as_str())
            );
        }
        Ok(())
    }

    #[test]
    fn head_is_looked_up_as_get() -> io::Result<()> {
        let table = Operations::build(false, &[])?;
        let Lookup::Found(op) = table.lookup(&Method::HEAD, "/sms/1/inbox/reports") else {
            panic!("HEAD is not routed as GET");
        };
        assert_eq!(op.template, "/sms/1/inbox/reports");
        assert!(matches!(
            table.lookup(&Method::HEAD, "/sms/2/text/advanced"),
            Lookup::MethodNotAllowed
        ));
        Ok(())
    }

    #[test]
    fn default_table_refuses_api_keys_for_key_management() -> io::Result<()> {
        let table = Operations::build(false, &[])?;
        assert_eq!(table.len(), 4);
        let Lookup::Found(op) = table.lookup(&Method::POST, "/settings/2/api-keys") else {
            panic!("not routed");
        };
        assert!(!op.schemes.contains(&Scheme::App));
        assert!(op.schemes.contains(&Scheme::Bearer));
        Ok(())
    }

    #[test]
    fn refuses_unroutable_templates_and_unknown_schemes() {
        let bad = |template: &str, schemes: &str| {
            let op = OperationConfig {
                method: Method::GET,
                path_template: template.to_owned(),
                scopes: String::new(),
                schemes: schemes.to_owned(),
            };
            Operations::build(false, &[op]).is_err()
        };
        assert!(bad("/x/{id}.json", "App"));
        assert!(bad("no-slash", "App"));
        assert!(bad("/x", "Digest"));
        assert!(!bad("/x/{id}", "app, bearer"));
    }
}
