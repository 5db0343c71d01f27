//! `Catalog`: every Infobip operation, with the scopes that grant it and the schemes it accepts.
//!
//! The built-in table is `data/x_scopes_by_operation.tsv` (943 operations of Infobip's OpenAPI
//! specification), embedded with `include_str!` and parsed once per process, at first use, behind
//! a [`LazyLock`]. Why not a generated Rust module: the [`matchit`] routers and the scope sets
//! have to be built at run time either way (neither can be `const`), and that is most of the
//! cost (about 2–3 ms in a release build, once per process); generated code would only save
//! splitting 943 short lines, a fraction of a millisecond, at the price of a generator, a large
//! checked-in file and a test keeping the two in sync. Lookups cost the same in both designs: a
//! scan of at most seven methods and a walk of one to four radix trees (see `routes.rs`), with
//! no allocation (about 50 ns). To update the table, replace the TSV file; the tests check every
//! row.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use http::Method;
use matchit::InsertError;

use super::routes::{Routes, shape};
use super::{AuthScheme, Scopes};
use crate::error::ConfigError;

/// The operations table copied from Infobip's OpenAPI specification (see `data/README.md`).
const INFOBIP_TSV: &str = include_str!("../../data/x_scopes_by_operation.tsv");

/// Built once per process; [`Catalog::infobip`] hands out clones of the `Arc`.
static INFOBIP: LazyLock<Catalog> = LazyLock::new(|| {
    // The embedded table is constant; `the_embedded_table_parses_in_full` proves it
    // parses. Should it ever fail, an empty catalogue only turns the scope check off.
    Catalog::from_tsv(INFOBIP_TSV).unwrap_or_else(|_| Catalog::empty())
});

/// Which scopes grant each Infobip operation and which authentication schemes it accepts,
/// looked up by method and request path.
///
/// [`Catalog::infobip`] holds all 943 operations of Infobip's OpenAPI specification; add or
/// override entries with [`Catalog::with_operation`]. Cloning is cheap (one `Arc`).
///
/// ```
/// use http::Method;
/// use infobip_auth::Catalog;
/// let catalog = Catalog::infobip();
/// let op = catalog.lookup(&Method::GET, "/sms/1/reports").ok_or("not found")?;
/// assert!(op.required.iter().any(|s| s.as_str() == "sms:manage"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Catalog {
    table: Arc<Table>,
}

/// One operation found in a [`Catalog`]: what grants it and how it may be authenticated.
///
/// Borrowed from the catalogue, so a lookup allocates nothing.
///
/// ```
/// use http::Method;
/// use infobip_auth::{AuthScheme, Catalog};
/// let catalog = Catalog::infobip();
/// let op = catalog.lookup(&Method::POST, "/settings/2/api-keys").ok_or("not found")?;
/// assert_eq!(op.template, "/settings/2/api-keys");
/// assert!(!op.accepts(AuthScheme::ApiKey));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operation<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The path template, e.g. `/2fa/2/applications/{appId}` (as given, for user entries).
    pub template: &'a str,
    /// The OpenAPI `operationId`; empty for entries added with [`Catalog::with_operation`].
    pub operation_id: &'a str,
    /// The scopes that grant the operation: any one of them is enough. Empty when the
    /// operation lists none (it is then not checked).
    pub required: &'a Scopes,
    /// The schemes the operation accepts, in the specification's order. Empty when the
    /// operation declares none (it is then not checked).
    pub accepted: &'a [AuthScheme],
}

impl Operation<'_> {
    /// Whether a credential of `scheme` may call the operation: it is among the accepted
    /// schemes, or the operation declares none.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::{AuthScheme, Catalog};
    /// let catalog = Catalog::infobip();
    /// let op = catalog.lookup(&Method::POST, "/sms/2/text/advanced").ok_or("not found")?;
    /// assert!(op.accepts(AuthScheme::ApiKey));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn accepts(&self, scheme: AuthScheme) -> bool {
        self.accepted.is_empty() || self.accepted.contains(&scheme)
    }

    /// Whether a credential holding `held` may call the operation: it holds one of the
    /// required scopes, or the operation lists none.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::Catalog;
    /// let catalog = Catalog::infobip();
    /// let op = catalog.lookup(&Method::POST, "/sms/2/text/advanced").ok_or("not found")?;
    /// assert!(op.granted_by(&"sms:manage".parse()?));
    /// assert!(!op.granted_by(&"inbound-message:read".parse()?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn granted_by(&self, held: &Scopes) -> bool {
        self.required.is_empty() || held.grants_any(self.required)
    }
}

/// The shared contents of a [`Catalog`].
#[derive(Clone, Default)]
struct Table {
    entries: Vec<Entry>,
    /// Path templates → index in `entries`.
    routes: Routes,
    /// `(method, template with parameter names removed)` → index in `entries`, so that
    /// `/x/{a}` and `/x/{b}` are recognised as the same operation.
    shapes: HashMap<(Method, String), usize>,
}

#[derive(Clone)]
struct Entry {
    method: Method,
    template: Box<str>,
    operation_id: Box<str>,
    required: Scopes,
    accepted: Box<[AuthScheme]>,
}

impl Entry {
    fn operation(&self) -> Operation<'_> {
        Operation {
            method: &self.method,
            template: &self.template,
            operation_id: &self.operation_id,
            required: &self.required,
            accepted: &self.accepted,
        }
    }
}

impl Table {
    /// Adds `entry`, or replaces the entry for the same method and template shape.
    fn insert(&mut self, entry: Entry) -> Result<(), ConfigError> {
        let shape = shape(&entry.template).map_err(|reason| ConfigError::Invalid {
            what: "path template",
            reason,
        })?;
        let key = (entry.method.clone(), shape);
        if let Some(&index) = self.shapes.get(&key)
            && let Some(slot) = self.entries.get_mut(index)
        {
            *slot = entry;
            return Ok(());
        }
        let index = self.entries.len();
        self.routes
            .insert(&entry.method, &entry.template, &key.1, index)
            .map_err(|err| template_error(&err))?;
        self.entries.push(entry);
        self.shapes.insert(key, index);
        Ok(())
    }
}

impl Catalog {
    /// All operations of Infobip's OpenAPI specification (943), parsed once per process.
    ///
    /// ```
    /// assert_eq!(infobip_auth::Catalog::infobip().len(), 943);
    /// ```
    #[must_use]
    pub fn infobip() -> Catalog {
        INFOBIP.clone()
    }

    /// A catalogue with no operation, to fill with [`Catalog::with_operation`] alone.
    ///
    /// ```
    /// assert!(infobip_auth::Catalog::empty().is_empty());
    /// ```
    #[must_use]
    pub fn empty() -> Catalog {
        Catalog {
            table: Arc::new(Table::default()),
        }
    }

    /// Adds an operation, or replaces the one with the same method and template (parameter
    /// names aside: `/x/{id}` replaces `/x/{messageId}`). An empty `required` turns the scope
    /// check off for the operation; an empty `accepted` turns the scheme check off.
    ///
    /// Templates use `{name}` for one path segment, as OpenAPI writes them; a static segment
    /// wins over a parameter at the same place.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the template does not start with `/`, has a malformed
    /// parameter, or is ambiguous with a template already present.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::{AuthScheme, Catalog};
    /// let catalog = Catalog::infobip().with_operation(
    ///     Method::POST,
    ///     "/sms/2/text/advanced",
    ///     "sms:manage".parse()?,
    ///     &[AuthScheme::ApiKey],
    /// )?;
    /// let op = catalog.lookup(&Method::POST, "/sms/2/text/advanced").ok_or("not found")?;
    /// assert_eq!(op.required.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_operation(
        mut self,
        method: Method,
        path_template: &str,
        required: Scopes,
        accepted: &[AuthScheme],
    ) -> Result<Catalog, ConfigError> {
        let entry = Entry {
            method,
            template: path_template.into(),
            operation_id: "".into(),
            required,
            accepted: dedup(accepted).into(),
        };
        Arc::make_mut(&mut self.table).insert(entry)?;
        Ok(self)
    }

    /// The operation a request to `method path` calls; `None` when the catalogue does not know
    /// it. `path` is the request path without the query (a query, if present, is ignored);
    /// parameters in templates match any one non-empty segment. A path is read as a server
    /// reads it: percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are the
    /// characters themselves (RFC 3986 §6.2.2.2), `.` and `..` segments are resolved (§5.2.4),
    /// and a trailing slash is ignored when the path matches nothing with it; case counts
    /// (paths are case-sensitive). `HEAD` calls the operation `GET` does, when no operation
    /// of its own is listed (RFC 9110 §9.3.2). Allocates nothing.
    ///
    /// ```
    /// use http::Method;
    /// use infobip_auth::Catalog;
    /// let catalog = Catalog::infobip();
    /// let op = catalog.lookup(&Method::GET, "/sms/1/logs?limit=5").ok_or("not found")?;
    /// assert_eq!(op.operation_id, "get-outbound-sms-message-logs");
    /// let same = |path| catalog.lookup(&Method::GET, path).map(|op| op.operation_id);
    /// assert_eq!(same("/sms/1/%6Cogs/"), Some("get-outbound-sms-message-logs"));
    /// assert_eq!(same("/SMS/1/logs"), None);
    /// assert!(catalog.lookup(&Method::GET, "/no/such/endpoint").is_none());
    /// let head = catalog.lookup(&Method::HEAD, "/sms/1/logs").ok_or("not found")?;
    /// assert_eq!(head.operation_id, "get-outbound-sms-message-logs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn lookup(&self, method: &Method, path: &str) -> Option<Operation<'_>> {
        let path = path_only(path);
        let index = self.table.routes.find(method, path).or_else(|| {
            (method == Method::HEAD)
                .then(|| self.table.routes.find(&Method::GET, path))
                .flatten()
        })?;
        self.table.entries.get(index).map(Entry::operation)
    }

    /// Every operation, in the order they were added.
    ///
    /// ```
    /// let catalog = infobip_auth::Catalog::infobip();
    /// assert!(catalog.operations().any(|op| op.operation_id == "create-api-key"));
    /// ```
    pub fn operations(&self) -> impl Iterator<Item = Operation<'_>> {
        self.table.entries.iter().map(Entry::operation)
    }

    /// How many operations the catalogue holds.
    ///
    /// ```
    /// assert_eq!(infobip_auth::Catalog::empty().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.entries.len()
    }

    /// Whether the catalogue holds no operation.
    ///
    /// ```
    /// assert!(!infobip_auth::Catalog::infobip().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.entries.is_empty()
    }

    /// Parses the operations table: a header line, then one operation per line with six
    /// tab-separated fields: spec file, method, path template, operationId, scopes (comma
    /// separated) and security schemes (comma separated OpenAPI names).
    fn from_tsv(text: &str) -> Result<Catalog, ConfigError> {
        let row_error = |reason| ConfigError::Invalid {
            what: "catalogue row",
            reason,
        };
        let mut table = Table::default();
        for line in text.lines().skip(1).filter(|line| !line.trim().is_empty()) {
            let fields: Vec<&str> = line.split('\t').collect();
            let &[_spec, method, template, operation_id, scopes, schemes] = fields.as_slice()
            else {
                return Err(row_error("a row needs six tab-separated fields"));
            };
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| row_error("invalid HTTP method"))?;
            let accepted = schemes
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| {
                    AuthScheme::from_openapi_name(name)
                        .ok_or_else(|| row_error("unknown security scheme"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            table.insert(Entry {
                method,
                template: template.into(),
                operation_id: operation_id.into(),
                required: Scopes::parse_list(scopes)?,
                accepted: dedup(&accepted).into(),
            })?;
        }
        Ok(Catalog {
            table: Arc::new(table),
        })
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("operations", &self.len())
            .finish_non_exhaustive()
    }
}

/// `path` up to its query, if it has one.
pub(super) fn path_only(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// The schemes in their first order, each once.
fn dedup(schemes: &[AuthScheme]) -> Vec<AuthScheme> {
    let mut out = Vec::with_capacity(schemes.len());
    for &scheme in schemes {
        if !out.contains(&scheme) {
            out.push(scheme);
        }
    }
    out
}

fn template_error(err: &InsertError) -> ConfigError {
    let reason = match err {
        InsertError::Conflict { .. } => "is ambiguous with a template already in the catalogue",
        InsertError::InvalidParamSegment => "has more than one parameter in a segment",
        InsertError::InvalidParam => "has a malformed parameter",
        InsertError::InvalidCatchAll => "has a catch-all parameter before its end",
        _ => "is not a valid route",
    };
    ConfigError::Invalid {
        what: "path template",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The rows of the embedded table, read independently of [`Catalog::from_tsv`].
    fn rows() -> Vec<[&'static str; 6]> {
        INFOBIP_TSV
            .lines()
            .skip(1)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut fields = line.split('\t');
                std::array::from_fn(|_| fields.next().unwrap_or_default())
            })
            .collect()
    }

    /// A request path for `template`: every `{param}` replaced by `abc123`.
    fn sample_path(template: &str) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            out.push_str("abc123");
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |e| start + e + 1);
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    fn sorted<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut items: Vec<&str> = items.filter(|s| !s.is_empty()).collect();
        items.sort_unstable();
        items
    }

    #[test]
    fn the_embedded_table_parses_in_full() {
        assert!(Catalog::from_tsv(INFOBIP_TSV).is_ok());
        assert_eq!(rows().len(), 943);
        assert_eq!(Catalog::infobip().len(), 943);
    }

    #[test]
    fn every_row_resolves_to_its_scopes_and_schemes() {
        let catalog = Catalog::infobip();
        let mut checked = 0;
        for [_spec, method, template, operation_id, scopes, schemes] in rows() {
            let method = Method::from_bytes(method.as_bytes());
            assert!(method.is_ok(), "{method:?}");
            let Ok(method) = method else { continue };
            for path in [sample_path(template), template.to_owned()] {
                let op = catalog.lookup(&method, &path);
                let Some(op) = op else {
                    panic!("{method} {path} does not resolve");
                };
                assert_eq!(
                    (op.method, op.template, op.operation_id),
                    (&method, template, operation_id),
                    "{method} {path}"
                );
                assert_eq!(
                    sorted(op.required.iter().map(|s| s.as_str())),
                    sorted(scopes.split(',')),
                    "{method} {path}"
                );
                let accepted: Vec<&str> = op.accepted.iter().map(|s| s.openapi_name()).collect();
                let expected: Vec<&str> = schemes.split(',').filter(|s| !s.is_empty()).collect();
                assert_eq!(accepted, expected, "{method} {path}");
            }
            checked += 1;
        }
        assert_eq!(checked, 943);
    }

    #[test]
    fn the_sms_example_of_the_seed() -> Result<(), ConfigError> {
        let catalog = Catalog::infobip();
        let op = catalog.lookup(&Method::POST, "/sms/2/text/advanced");
        let required = op.map(|op| op.required.clone());
        assert_eq!(
            required,
            Some("message:send,sms:message:send,sms:manage".parse()?)
        );
        Ok(())
    }

    #[test]
    fn api_key_management_refuses_api_keys() {
        let catalog = Catalog::infobip();
        let op = catalog.lookup(&Method::POST, "/settings/2/api-keys");
        assert_eq!(
            op.map(|op| op.accepted),
            Some(&[AuthScheme::Ibsso, AuthScheme::Basic, AuthScheme::OAuth2][..])
        );
    }

    #[test]
    fn static_segments_win_over_parameters() {
        let catalog = Catalog::infobip();
        let id = |path| catalog.lookup(&Method::GET, path).map(|op| op.operation_id);
        assert_eq!(
            id("/platform/1/openapi/available-products"),
            Some("get-available-products")
        );
        assert_eq!(
            id("/platform/1/openapi/sms"),
            Some("get-product-level-openapi")
        );
    }

    #[test]
    fn a_path_is_read_as_a_server_reads_it() {
        let catalog = Catalog::infobip();
        let id = |method, path| catalog.lookup(&method, path).map(|op| op.operation_id);
        let logs = Some("get-outbound-sms-message-logs");
        for path in [
            "/sms/1/logs/",
            "/sms/1/logs/?limit=5",
            "/sm%73/1/%6c%6F%67%73",
            "/%73ms/1/logs/",
        ] {
            assert_eq!(id(Method::GET, path), logs, "{path}");
        }
        // Decoded before matching: the static segment, not the parameter beside it.
        assert_eq!(
            id(Method::GET, "/platform/1/openapi/%61vailable-products"),
            Some("get-available-products")
        );
        let app = Some("get-2fa-application");
        assert_eq!(id(Method::GET, "/2fa/2/applications/x%2Fy/"), app);
        for path in [
            // Paths are case-sensitive.
            "/SMS/1/logs",
            "/sms/1/Logs/",
            // Only unreserved characters are decoded: `%2F` is no `/`.
            "/sms/1%2Flogs",
            // A parameter never matches an empty segment, slash or not.
            "/2fa/2/applications//",
            // One trailing slash, not two.
            "/sms/1/logs//",
            "/",
        ] {
            assert_eq!(id(Method::GET, path), None, "{path}");
        }
    }

    #[test]
    fn dot_segments_are_resolved_as_a_server_resolves_them() {
        let catalog = Catalog::infobip();
        let id = |method, path| catalog.lookup(&method, path).map(|op| op.operation_id);
        let logs = Some("get-outbound-sms-message-logs");
        for path in [
            "/sms/1/x/../logs",
            "/sms/1/./logs",
            "/sms/2/../1/logs",
            "/sms/1/logs/.",
            "/sms/1/logs/x/..",
            "/sms/1/%2E/logs",
            "/sms/1/x/%2e%2E/logs?limit=5",
            "/../sms/1/logs",
        ] {
            assert_eq!(id(Method::GET, path), logs, "{path}");
        }
        // Written, this path fills the parameters of an item's operation; the server deletes
        // the catalogue `X`, which `catalogs:use` does not grant.
        assert_eq!(
            id(Method::DELETE, "/catalogs/1/catalogs/X/items/.."),
            Some("delete-catalog")
        );
        // Dots inside a segment are no dot segment.
        assert_eq!(
            id(Method::GET, "/2fa/2/applications/..x"),
            Some("get-2fa-application")
        );
        assert_eq!(id(Method::GET, "/sms/1/logs/../.."), None);
    }

    #[test]
    fn unknown_requests_find_nothing() {
        let catalog = Catalog::infobip();
        for (method, path) in [
            (Method::GET, "/nope"),
            (Method::GET, ""),
            (Method::POST, "/sms/1/logs"),
            (Method::TRACE, "/sms/1/logs"),
            (Method::GET, "/sms/1/logs/extra/segments"),
        ] {
            assert!(catalog.lookup(&method, path).is_none(), "{method} {path}");
        }
    }

    #[test]
    fn user_entries_override_built_in_ones() -> Result<(), ConfigError> {
        let catalog = Catalog::infobip();
        let builtin = catalog
            .lookup(&Method::GET, "/sms/1/reports")
            .map(|op| op.template.to_owned());
        let custom = catalog
            .clone()
            .with_operation(Method::GET, "/sms/1/reports", "web:sdk".parse()?, &[])?
            // Same shape as `/2fa/2/applications/{appId}`: an override, not a conflict.
            .with_operation(
                Method::GET,
                "/2fa/2/applications/{id}",
                "2fa:pin:send".parse()?,
                &[AuthScheme::Basic, AuthScheme::Basic],
            )?;
        assert_eq!(custom.len(), 943);

        let op = custom.lookup(&Method::GET, "/sms/1/reports");
        assert_eq!(op.map(|op| op.required.clone()), Some("web:sdk".parse()?));
        assert_eq!(op.map(|op| op.operation_id), Some(""));
        assert_eq!(op.map(|op| op.accepted.len()), Some(0));

        let op = custom.lookup(&Method::GET, "/2fa/2/applications/xyz");
        assert_eq!(op.map(|op| op.template), Some("/2fa/2/applications/{id}"));
        assert_eq!(op.map(|op| op.accepted), Some(&[AuthScheme::Basic][..]));

        // The original is untouched.
        let op = catalog.lookup(&Method::GET, "/sms/1/reports");
        assert_eq!(op.map(|op| op.template.to_owned()), builtin);
        assert!(op.is_some_and(|op| !op.operation_id.is_empty()));
        Ok(())
    }

    #[test]
    fn user_entries_add_operations() -> Result<(), ConfigError> {
        let catalog = Catalog::empty()
            .with_operation(Method::GET, "/x/{a}/y", "a:b".parse()?, &[])?
            .with_operation(Method::GET, "/x/static/y", "c:d".parse()?, &[])?
            .with_operation(Method::GET, "/x/{b}/z", "e:f".parse()?, &[])?;
        let scope = |path| {
            catalog
                .lookup(&Method::GET, path)
                .map(|op| op.required.to_string())
        };
        assert_eq!(scope("/x/1/y").as_deref(), Some("a:b"));
        assert_eq!(scope("/x/static/y").as_deref(), Some("c:d"));
        assert_eq!(scope("/x/2/z").as_deref(), Some("e:f"));
        assert_eq!(catalog.len(), 3);
        Ok(())
    }

    #[test]
    fn malformed_templates_are_refused() -> Result<(), ConfigError> {
        for template in [
            "no/leading/slash",
            "/x/{unclosed",
            "/x/stray}",
            "/x/{a}{b}",
            "/x/{*rest}/more",
        ] {
            let result =
                Catalog::empty().with_operation(Method::GET, template, "a:b".parse()?, &[]);
            assert!(
                matches!(result, Err(ConfigError::Invalid { .. })),
                "{template}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_built_in_table_needs_few_routers() {
        let catalog = Catalog::infobip();
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let layers = catalog.table.routes.layers(&method);
            assert!((1..=4).contains(&layers), "{method}: {layers}");
        }
    }

    #[test]
    fn debug_is_short() {
        assert_eq!(
            format!("{:?}", Catalog::infobip()),
            "Catalog { operations: 943, .. }"
        );
    }

    /// A path template: Infobip's own shapes, with braces and catch-alls anywhere.
    fn template() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            "[a-z0-9]{1,6}",
            "\\{[a-zA-Z]{0,4}\\}",
            "[a-z]{0,3}\\{[a-z]{1,3}\\}[a-z.]{0,3}",
            "\\{\\*[a-z]{0,3}\\}",
            "[{}*:/a-z]{0,6}",
            ".{0,4}",
        ];
        prop_oneof![
            proptest::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/"))),
            ".{0,20}",
        ]
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::GET),
            Just(Method::POST),
            Just(Method::DELETE),
            "[A-Z]{1,8}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap_or_default()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_templates_are_added_or_refused_and_any_path_looked_up(
            operations in proptest::collection::vec((method(), template()), 1..6),
            paths in proptest::collection::vec((method(), template()), 1..6),
            start_from_infobip in any::<bool>(),
        ) {
            let mut catalog = if start_from_infobip { Catalog::infobip() } else { Catalog::empty() };
            for (method, template) in operations {
                match catalog.clone().with_operation(method, &template, Scopes::new(), &[]) {
                    Ok(more) => catalog = more,
                    Err(err) => prop_assert!(matches!(err, ConfigError::Invalid { .. }), "{:?}", err),
                }
            }
            for (method, path) in paths {
                let _ = catalog.lookup(&method, &path);
            }
        }

        #[test]
        fn any_table_text_is_read_or_refused(
            rows in proptest::collection::vec(
                (method(), template(), "[a-z:,]{0,12}", "[A-Za-z,]{0,20}", 0usize..3),
                0..5,
            ),
            junk in ".{0,40}",
        ) {
            let mut text = String::from("header\n");
            for (method, template, scopes, schemes, extra_tabs) in rows {
                let tabs = "\t".repeat(extra_tabs);
                text.push_str(&format!("spec\t{method}\t{template}\tid\t{scopes}\t{schemes}{tabs}\n"));
            }
            text.push_str(&junk);
            if let Err(err) = Catalog::from_tsv(&text) {
                prop_assert!(
                    matches!(err, ConfigError::Invalid { .. } | ConfigError::InvalidScope { .. }),
                    "{:?}",
                    err
                );
            }
        }
    }
}
