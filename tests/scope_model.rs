//! A model-based property test of the scope check, through the public API only.
//!
//! Proptest draws requests from Infobip's catalogue itself: an operation of
//! `data/x_scopes_by_operation.tsv`, its path template filled with generated segments, and
//! then maybe changed (a query, a trailing slash, a doubled slash, a segment in other case or
//! percent-encoded, an extra segment, a dot segment, or a path the catalogue lacks). The
//! credential has a scheme (API key, Basic, IBSSO, Bearer, an unknown word or none) and held
//! scopes (unknown, none, some of the operation's, others, names Infobip never uses), and
//! reaches the check standalone (`ScopeCheckLayer::held`) or through the auth layer (scopes
//! reported by the token source, declared over them, or a caller's own `Authorization`). The
//! inner service answers any status, with a body in one of Infobip's three error shapes,
//! empty, oversized, cut, not UTF-8, split over many (empty) frames, ending in trailers, an
//! error or a stall.
//!
//! The model reads the TSV itself, independently of the crate's parser and router, and checks:
//!
//! - pre-flight refuses exactly when the operation is known and does not accept the sent
//!   scheme, or the held scopes are known and hold none of its scopes; a refusal names the
//!   accepted schemes, or the required and held scopes, and nothing reaches the inner service;
//! - the operation found is the one the data gives the path read as a server reads it
//!   (percent-encoded unreserved characters decoded, dot segments resolved, a trailing slash
//!   ignored, case kept);
//! - a path the catalogue lacks is never refused; anything not refused reaches the inner
//!   service unchanged (method, URI, headers, body);
//! - a `401` carries `InvalidCredentials`, a `403` a `Forbidden` naming the operation's
//!   template, exactly its required scopes, the held ones and the server's words; any other
//!   status carries nothing and its body is not read;
//! - `reject_forbidden` turns exactly the `403`s into `Err`;
//! - a request to another host than Infobip's (an absolute URI; a relative one is judged) is
//!   never refused nor classified: it reaches the server, and its answer comes back untouched;
//! - the body comes back byte for byte, with its trailers, error or stall, whatever was read;
//! - every error is the crate's typed `Error`; nothing waits past `read_timeout` (paused clock).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt as _, Full, StreamBody};
use infobip_auth::scope::{AuthScheme, Catalog, ScopeCheckLayer};
use infobip_auth::source::TokenSource;
use infobip_auth::{
    BoxError, Credential, Error, ErrorKind, InfobipAuthLayer, ReplayPolicy, Scope, Scopes,
};
use proptest::prelude::*;
use tokio::time::Instant;
use tower::{Layer as _, Service, ServiceExt as _, service_fn};

/// The catalogue's data, read here without the crate's parser.
const TSV: &str = include_str!("../data/x_scopes_by_operation.tsv");
const HOST: &str = "https://xyz12.api.infobip.com";
/// Another service's host, whose requests the check leaves alone.
const ELSEWHERE: &str = "https://crm.example.com";
/// The default read limit of a `401`/`403` body, and its frame cap.
const DEFAULT_READ_LIMIT: usize = 64 * 1024;
const MAX_FRAMES: usize = 1024;

// ---------------------------------------------------------------------------------------------
// The model of the catalogue.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Static(String),
    Param,
}

#[derive(Clone, Debug)]
struct Row {
    method: Method,
    template: String,
    segments: Vec<Segment>,
    scopes: BTreeSet<String>,
    /// OpenAPI scheme names, in the file's order.
    schemes: Vec<String>,
}

fn rows() -> &'static [Row] {
    static ROWS: std::sync::LazyLock<Vec<Row>> = std::sync::LazyLock::new(|| {
        TSV.lines()
            .skip(1)
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                let field = |i: usize| fields.get(i).copied().unwrap_or_default();
                let template = field(2).to_owned();
                let segments = template
                    .split('/')
                    .skip(1)
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Static(s.to_owned())
                        }
                    })
                    .collect();
                let list = |s: &str| -> Vec<String> {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                };
                Row {
                    method: Method::from_bytes(field(1).as_bytes()).unwrap_or_default(),
                    template,
                    segments,
                    scopes: list(field(4)).into_iter().collect(),
                    schemes: list(field(5)),
                }
            })
            .collect()
    });
    &ROWS
}

/// Every scope name the catalogue uses.
fn scope_pool() -> &'static [String] {
    static POOL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let all: BTreeSet<String> = rows().iter().flat_map(|r| r.scopes.clone()).collect();
        all.into_iter().collect()
    });
    &POOL
}

/// The operation `method path` calls: every segment equal, a parameter matching any non-empty
/// segment, and among several matches the one with a static segment where they first differ.
/// The path is read as a server reads it: percent-encoded unreserved characters decoded, dot
/// segments resolved, and one trailing slash dropped if the path matches nothing with it. `HEAD` is looked up as
/// `GET` when no `HEAD` operation matches.
fn model_lookup<'a>(table: &'a [Row], method: &Method, path: &str) -> Option<&'a Row> {
    let path = without_dots(&decoded(path.split_once('?').map_or(path, |(p, _)| p)));
    let with_method = |method: &Method| {
        model_lookup_as_written(table, method, &path).or_else(|| {
            let without = path.strip_suffix('/').filter(|p| !p.is_empty())?;
            model_lookup_as_written(table, method, without)
        })
    };
    with_method(method).or_else(|| (method == Method::HEAD).then(|| with_method(&Method::GET))?)
}

/// `path` with each `%XX` that encodes `A-Z a-z 0-9 - . _ ~` replaced by that character.
fn decoded(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let character = rest
            .get(at + 1..at + 3)
            .filter(|hex| hex.chars().all(|c| c.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map(char::from)
            .filter(|c| c.is_ascii_alphanumeric() || "-._~".contains(*c));
        match character {
            Some(c) => {
                out.push(c);
                rest = &rest[at + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `path` with its `.` and `..` segments resolved, as RFC 3986 §5.2.4 resolves them: a `..`
/// takes the segment before it away (none above the root), and a dot segment at the end
/// leaves the path ending in `/`.
fn without_dots(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_owned();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    kept.pop();
                }
                if last {
                    kept.push("");
                }
            }
            other => kept.push(other),
        }
    }
    format!("/{}", kept.join("/"))
}

fn model_lookup_as_written<'a>(table: &'a [Row], method: &Method, path: &str) -> Option<&'a Row> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let matches = |row: &Row| {
        row.method == *method
            && row.segments.len() == segments.len()
            && row.segments.iter().zip(&segments).all(|(t, s)| match t {
                Segment::Static(t) => t == s,
                Segment::Param => !s.is_empty(),
            })
    };
    let rank = |row: &Row| -> Vec<u8> {
        row.segments
            .iter()
            .map(|s| u8::from(*s == Segment::Param))
            .collect()
    };
    table.iter().filter(|r| matches(r)).min_by_key(|r| rank(r))
}

fn openapi_scheme(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "app" => Some("APIKeyHeader"),
        "basic" => Some("Basic"),
        "ibsso" => Some("IBSSOTokenHeader"),
        "bearer" => Some("OAuth2"),
        _ => None,
    }
}

fn scopes_of<'a>(names: impl IntoIterator<Item = &'a String>) -> Scopes {
    names
        .into_iter()
        .filter_map(|name| Scope::new(name).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What a case is made of.

#[derive(Clone, Debug)]
enum Change {
    None,
    Query(String),
    TrailingSlash,
    DoubledSlash(usize),
    UpperCase(usize),
    PercentEncoded(usize),
    ExtraSegment(String),
    /// The n-th (modulo) segment emptied.
    Emptied(usize),
    /// A dot segment (`.`, `..`, maybe percent-encoded) inserted before the n-th (modulo).
    Dotted(usize, &'static str),
    Elsewhere(String),
}

#[derive(Clone, Debug)]
enum Held {
    Unknown,
    Known(Vec<HeldScope>),
}

#[derive(Clone, Debug)]
enum HeldScope {
    /// The n-th (modulo) of the operation's own scopes.
    Required(usize),
    /// The n-th (modulo) of all the catalogue's scopes.
    Any(usize),
    /// A name Infobip never uses.
    Foreign(String),
}

/// Where the request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Host {
    /// An Infobip host: judged.
    Infobip,
    /// A relative URI (a tonic channel's): judged, standalone only (the auth layer is given
    /// Infobip's host).
    Relative,
    /// Another service (a CRM): passed through untouched, standalone or with the caller's own
    /// `Authorization` (the auth layer would not send its credential there).
    Elsewhere,
}

/// How the credential reaches the check.
#[derive(Clone, Copy, Debug)]
enum Wiring {
    /// `ScopeCheckLayer::new()`, the test's own header, scopes declared with `held`.
    Standalone,
    /// The auth layer's `scope_check()`; the token source reports the scopes.
    Reported,
    /// The auth layer's `scope_check().held(..)`; the source reports other scopes.
    Declared,
    /// The auth layer, but the caller sets its own `Authorization`: the credential's scopes
    /// are not the request's.
    CallersOwn,
}

#[derive(Clone, Debug)]
enum Shape {
    Legacy { id: String, text: String },
    Newer { code: String, description: String },
    Camara { code: String, message: String },
    Empty,
    Text(String),
    NotUtf8(Vec<u8>),
    Oversized(usize),
}

#[derive(Clone, Debug)]
enum Ending {
    End,
    Trailers,
    Fails,
    Stalls,
}

#[derive(Clone, Debug)]
struct Answer {
    status: StatusCode,
    shape: Shape,
    /// Cut the body after this many bytes, if it is longer.
    cut: Option<usize>,
    /// Sizes of the data frames (cycled); 0 makes an empty frame.
    chunks: Vec<usize>,
    /// Empty frames before the first data.
    leading_empty: usize,
    ending: Ending,
}

#[derive(Clone, Debug)]
struct Case {
    op: usize,
    other_method: Option<Method>,
    params: Vec<String>,
    change: Change,
    host: Host,
    /// The `Authorization` word: `App`, `Basic`, `IBSSO`, `Bearer` in some case, or another.
    word: Option<String>,
    held: Held,
    wiring: Wiring,
    preflight: bool,
    reject_forbidden: bool,
    read_limit: Option<usize>,
    read_timeout: Duration,
    request_body: Vec<u8>,
    answer: Answer,
    /// An operation of the caller's own, added to the catalogue.
    custom: Option<Custom>,
}

/// An operation added with `Catalog::with_operation`: a catalogue row with one segment
/// changed (a parameter made static, or a static segment made a parameter), its own scopes
/// and schemes.
#[derive(Clone, Debug)]
struct Custom {
    row: Row,
    /// Whether the request is drawn from it.
    aimed_at: bool,
}

fn custom() -> impl Strategy<Value = Custom> {
    (
        0..rows().len(),
        0usize..8,
        prop::option::of(segment()),
        prop::collection::vec(0usize..1024, 0..3),
        prop::sample::subsequence(
            vec!["APIKeyHeader", "Basic", "IBSSOTokenHeader", "OAuth2"],
            0..=4,
        ),
        any::<bool>(),
    )
        .prop_map(|(op, at, made_static, scopes, schemes, aimed_at)| {
            let base = &rows()[op];
            let mut parts: Vec<String> = base
                .template
                .split('/')
                .skip(1)
                .map(str::to_owned)
                .collect();
            let at = at % parts.len().max(1);
            let mut segments = base.segments.clone();
            if let (Some(part), Some(segment)) = (parts.get_mut(at), segments.get_mut(at)) {
                match made_static {
                    Some(name) => {
                        part.clone_from(&name);
                        *segment = Segment::Static(name);
                    }
                    None => {
                        *part = "{custom}".to_owned();
                        *segment = Segment::Param;
                    }
                }
            }
            let pool = scope_pool();
            Custom {
                row: Row {
                    method: base.method.clone(),
                    template: format!("/{}", parts.join("/")),
                    segments,
                    scopes: scopes
                        .iter()
                        .map(|i| pool[i % pool.len()].clone())
                        .collect(),
                    schemes: schemes.into_iter().map(str::to_owned).collect(),
                },
                aimed_at,
            }
        })
}

/// The data with `custom` added as `Catalog::with_operation` documents: it replaces the
/// operation of the same method and template shape, or is added.
fn table_with(custom: &Custom) -> Vec<Row> {
    let mut table = rows().to_vec();
    match table
        .iter_mut()
        .find(|r| r.method == custom.row.method && r.segments == custom.row.segments)
    {
        Some(existing) => *existing = custom.row.clone(),
        None => table.push(custom.row.clone()),
    }
    table
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]{1,12}",
        2 => "[A-Za-z0-9._~-]{1,10}",
        2 => "[a-z]{0,3}%[0-9A-F]{2}[a-z0-9]{0,3}",
        1 => prop::sample::select(vec!["me", "reports", "logs", "available-products", "bulks", "status"])
            .prop_map(str::to_owned),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        8 => Just(Change::None),
        2 => "[a-z]{1,5}=[a-zA-Z0-9%]{0,8}(&[a-z]{1,5}=[0-9]{1,3}){0,2}".prop_map(Change::Query),
        1 => Just(Change::TrailingSlash),
        1 => (0usize..8).prop_map(Change::DoubledSlash),
        1 => (0usize..8).prop_map(Change::UpperCase),
        1 => (0usize..8).prop_map(Change::PercentEncoded),
        1 => segment().prop_map(Change::ExtraSegment),
        1 => (0usize..8).prop_map(Change::Emptied),
        1 => (0usize..8, prop::sample::select(vec![".", "..", "%2E", "%2e%2E", ".%2e"]))
            .prop_map(|(i, dots)| Change::Dotted(i, dots)),
        1 => "(/[a-z0-9]{1,8}){1,4}".prop_map(Change::Elsewhere),
    ]
}

fn word() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => prop::sample::select(vec!["App", "Basic", "IBSSO", "Bearer", "app", "BEARER", "ibsso", "basic"])
            .prop_map(|w| Some(w.to_owned())),
        1 => prop::sample::select(vec!["Digest", "Token", "Application"]).prop_map(|w| Some(w.to_owned())),
        1 => Just(None),
    ]
}

fn held() -> impl Strategy<Value = Held> {
    let one = prop_oneof![
        3 => (0usize..16).prop_map(HeldScope::Required),
        3 => (0usize..1024).prop_map(HeldScope::Any),
        1 => prop::sample::select(vec!["x-unknown:read", "sms:manage:extra", "sms", "a.b:c_d"])
            .prop_map(|s| HeldScope::Foreign(s.to_owned())),
    ];
    prop_oneof![
        2 => Just(Held::Unknown),
        1 => Just(Held::Known(Vec::new())),
        4 => prop::collection::vec(one, 1..4).prop_map(Held::Known),
    ]
}

fn wiring() -> impl Strategy<Value = Wiring> {
    prop_oneof![
        Just(Wiring::Standalone),
        Just(Wiring::Reported),
        Just(Wiring::Declared),
        Just(Wiring::CallersOwn),
    ]
}

fn words() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 _.]{0,20}"
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        3 => (prop::sample::select(vec!["FORBIDDEN", "UNAUTHORIZED", "BAD_REQUEST"]).prop_map(str::to_owned), words())
            .prop_map(|(id, text)| Shape::Legacy { id, text }),
        3 => (prop::sample::select(vec!["E403", "E401", "E400"]).prop_map(str::to_owned), words())
            .prop_map(|(code, description)| Shape::Newer { code, description }),
        2 => (prop::sample::select(vec!["PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"]).prop_map(str::to_owned), words())
            .prop_map(|(code, message)| Shape::Camara { code, message }),
        1 => Just(Shape::Empty),
        1 => "[a-z <>/!]{1,60}".prop_map(Shape::Text),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|mut bytes| {
            bytes.insert(bytes.len() / 2, 0xff);
            Shape::NotUtf8(bytes)
        }),
        1 => (0usize..3000).prop_map(Shape::Oversized),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        4 => Just(StatusCode::FORBIDDEN),
        3 => Just(StatusCode::UNAUTHORIZED),
        2 => Just(StatusCode::OK),
        1 => prop::sample::select(vec![
            StatusCode::CREATED,
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
        ]),
    ];
    let ending = prop_oneof![
        4 => Just(Ending::End),
        1 => Just(Ending::Trailers),
        1 => Just(Ending::Fails),
        2 => Just(Ending::Stalls),
    ];
    (
        status,
        shape(),
        prop::option::weighted(0.2, 0usize..120),
        prop::collection::vec(0usize..40, 1..5),
        prop_oneof![4 => Just(0usize), 1 => 0usize..1200],
        ending,
    )
        .prop_map(
            |(status, shape, cut, chunks, leading_empty, ending)| Answer {
                status,
                shape,
                cut,
                chunks,
                leading_empty,
                ending,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec![
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
    ]);
    (
        (
            0..rows().len(),
            prop::option::weighted(0.1, method),
            prop::collection::vec(segment(), 6),
            change(),
            prop::sample::select(vec![Host::Infobip, Host::Relative, Host::Elsewhere]),
            word(),
            held(),
            wiring(),
        ),
        (
            prop::bool::weighted(0.85),
            any::<bool>(),
            prop::option::weighted(0.5, 0usize..200),
            (0u64..10).prop_map(Duration::from_secs),
            prop::collection::vec(any::<u8>(), 0..16),
            answer(),
            prop::option::weighted(0.25, custom()),
        ),
    )
        .prop_map(
            |(
                (op, other_method, params, change, host, word, held, wiring),
                (
                    preflight,
                    reject_forbidden,
                    read_limit,
                    read_timeout,
                    request_body,
                    answer,
                    custom,
                ),
            )| Case {
                op,
                other_method,
                params,
                change,
                host,
                word,
                held,
                wiring,
                preflight,
                reject_forbidden,
                read_limit,
                read_timeout,
                request_body,
                answer,
                custom,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Building the case.

impl Case {
    fn row(&self) -> &Row {
        match &self.custom {
            Some(custom) if custom.aimed_at => &custom.row,
            _ => &rows()[self.op % rows().len()],
        }
    }

    fn method(&self) -> Method {
        self.other_method
            .clone()
            .unwrap_or_else(|| self.row().method.clone())
    }

    /// The request path (and query), the template filled in and then changed.
    fn path(&self) -> String {
        let mut segments: Vec<String> = self
            .row()
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                Segment::Static(s) => s.clone(),
                Segment::Param => self.params[i % self.params.len()].clone(),
            })
            .collect();
        let at = |i: usize| i % segments.len().max(1);
        let mut query = None;
        match &self.change {
            Change::None => {}
            Change::Query(q) => query = Some(q.clone()),
            Change::TrailingSlash => segments.push(String::new()),
            Change::DoubledSlash(i) => {
                let i = at(*i);
                segments.insert(i, String::new());
            }
            Change::UpperCase(i) => {
                let i = at(*i);
                if let Some(s) = segments.get_mut(i) {
                    *s = s.to_uppercase();
                }
            }
            Change::PercentEncoded(i) => {
                let i = at(*i);
                if let Some(s) = segments.get_mut(i)
                    && let Some(c) = s.chars().next()
                {
                    *s = format!("%{:02X}{}", u32::from(c), &s[c.len_utf8()..]);
                }
            }
            Change::ExtraSegment(extra) => segments.push(extra.clone()),
            Change::Emptied(i) => {
                let i = at(*i);
                if let Some(s) = segments.get_mut(i) {
                    s.clear();
                }
            }
            Change::Dotted(i, dots) => {
                let i = at(*i);
                segments.insert(i, (*dots).to_owned());
            }
            Change::Elsewhere(path) => return path.clone(),
        }
        let mut path = format!("/{}", segments.join("/"));
        if let Some(query) = query {
            path.push('?');
            path.push_str(&query);
        }
        path
    }

    fn held_scopes(&self) -> Option<Scopes> {
        let Held::Known(picks) = &self.held else {
            return None;
        };
        let required: Vec<&String> = self.row().scopes.iter().collect();
        let pool = scope_pool();
        let names: Vec<String> = picks
            .iter()
            .filter_map(|pick| match pick {
                HeldScope::Required(i) => required
                    .get(i % required.len().max(1))
                    .map(|s| (*s).clone()),
                HeldScope::Any(i) => pool.get(i % pool.len()).cloned(),
                HeldScope::Foreign(s) => Some(s.clone()),
            })
            .collect();
        Some(scopes_of(&names))
    }

    /// The word of the credential of an auth layer: one of Infobip's four.
    fn credential_word(&self) -> &str {
        match self.word.as_deref() {
            Some(w) if openapi_scheme(w).is_some() => w,
            _ => "Bearer",
        }
    }

    /// The `Authorization` the request goes out with, and whether the auth layer's credential
    /// is the one it carries.
    fn sent_authorization(&self) -> (Option<String>, bool) {
        match self.wiring {
            Wiring::Standalone => (
                self.word.as_ref().map(|w| format!("{w} caller-token-1")),
                false,
            ),
            Wiring::Reported | Wiring::Declared => (
                Some(format!("{} layer-token-2", self.credential_word())),
                true,
            ),
            Wiring::CallersOwn => (
                Some(format!(
                    "{} caller-token-3",
                    self.word.as_deref().unwrap_or("Digest")
                )),
                false,
            ),
        }
    }

    /// The scopes the check knows the request's credential to hold.
    fn expected_held(&self) -> Option<Scopes> {
        match self.wiring {
            Wiring::Standalone | Wiring::Reported => self.held_scopes(),
            Wiring::Declared => Some(self.held_scopes().unwrap_or_else(reported_by_declared)),
            Wiring::CallersOwn => None,
        }
    }

    /// Where the request goes, as far as its wiring allows.
    fn host(&self) -> Host {
        match (self.host, self.wiring) {
            (Host::Relative, Wiring::Standalone) => Host::Relative,
            (Host::Elsewhere, Wiring::Standalone | Wiring::CallersOwn) => Host::Elsewhere,
            _ => Host::Infobip,
        }
    }

    fn read_limit(&self) -> usize {
        self.read_limit.unwrap_or(DEFAULT_READ_LIMIT)
    }

    fn request(&self) -> Result<Request<Full<Bytes>>, BoxError> {
        let path = self.path();
        let uri = match self.host() {
            Host::Infobip => format!("{HOST}{path}"),
            Host::Relative => path,
            Host::Elsewhere => format!("{ELSEWHERE}{path}"),
        };
        let mut builder = Request::builder()
            .method(self.method())
            .uri(uri)
            .header("x-case", "scope-model");
        if let (Some(authorization), Wiring::Standalone | Wiring::CallersOwn) =
            (self.sent_authorization().0, self.wiring)
        {
            builder = builder.header(AUTHORIZATION, authorization);
        }
        Ok(builder.body(Full::new(Bytes::from(self.request_body.clone())))?)
    }
}

impl Answer {
    fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.uncut();
        if let Some(cut) = self.cut {
            bytes.truncate(cut);
        }
        bytes
    }

    /// The body as the shape writes it, before any cut.
    fn uncut(&self) -> Vec<u8> {
        let json = |value: serde_json::Value| value.to_string().into_bytes();
        match &self.shape {
            Shape::Legacy { id, text } => json(serde_json::json!({
                "requestError": {"serviceException": {"messageId": id, "text": text}}
            })),
            Shape::Newer { code, description } => json(serde_json::json!({
                "errorCode": code, "description": description, "action": "Check the scopes.",
                "violations": [], "resources": []
            })),
            Shape::Camara { code, message } => json(serde_json::json!({
                "status": self.status.as_u16(), "code": code, "message": message
            })),
            Shape::Empty => Vec::new(),
            Shape::Text(text) => text.clone().into_bytes(),
            Shape::NotUtf8(bytes) => bytes.clone(),
            Shape::Oversized(extra) => {
                let mut body = br#"{"errorCode":"E403","description":""#.to_vec();
                body.resize(DEFAULT_READ_LIMIT + extra, b'x');
                body.extend_from_slice(br#""}"#);
                body
            }
        }
    }

    /// The code and text the server's words should be read as, when the body came whole
    /// within the read limit.
    fn words(&self) -> Option<(String, String)> {
        match &self.shape {
            Shape::Legacy { id, text } => Some((id.clone(), text.clone())),
            Shape::Newer { code, description } => Some((code.clone(), description.clone())),
            Shape::Camara { code, message } => Some((code.clone(), message.clone())),
            _ => None,
        }
    }

    /// The body's frames, in order.
    fn frames(&self) -> Vec<Frame<Bytes>> {
        let bytes = self.bytes();
        let mut frames: Vec<Frame<Bytes>> = (0..self.leading_empty)
            .map(|_| Frame::data(Bytes::new()))
            .collect();
        let mut at = 0;
        let mut sizes = self.chunks.iter().cycle();
        while at < bytes.len() {
            let size = sizes.next().copied().unwrap_or(1);
            // Large bodies in large frames: the test is about bytes, not frame counts.
            let size = if bytes.len() > 4096 {
                size.max(1) * 997
            } else {
                size
            };
            if size == 0 {
                frames.push(Frame::data(Bytes::new()));
            }
            let end = (at + size.max(1)).min(bytes.len());
            frames.push(Frame::data(Bytes::copy_from_slice(&bytes[at..end])));
            at = end;
        }
        if matches!(self.ending, Ending::Trailers) {
            frames.push(Frame::trailers(trailers()));
        }
        frames
    }

    fn body(&self) -> StreamBody<BoxStream<'static, Result<Frame<Bytes>, std::io::Error>>> {
        let frames = stream::iter(self.frames().into_iter().map(Ok));
        let stream = match self.ending {
            Ending::End | Ending::Trailers => frames.boxed(),
            Ending::Fails => frames
                .chain(stream::iter([Err(std::io::Error::other(
                    "connection reset",
                ))]))
                .boxed(),
            Ending::Stalls => frames.chain(stream::pending()).boxed(),
        };
        StreamBody::new(stream)
    }

    /// What the check reads of the body to classify it: up to the limit or the frame cap,
    /// until the body ends, fails or stalls.
    fn read_prefix(&self, limit: usize) -> (Vec<u8>, bool) {
        let mut read = Vec::new();
        let mut frames = 0;
        for frame in self.frames() {
            if read.len() >= limit || frames >= MAX_FRAMES {
                read.truncate(limit);
                return (read, false);
            }
            frames += 1;
            if let Some(data) = frame.data_ref() {
                read.extend_from_slice(data);
            }
        }
        let waited =
            matches!(self.ending, Ending::Stalls) && read.len() < limit && frames < MAX_FRAMES;
        read.truncate(limit);
        (read, waited)
    }
}

/// What the source reports when the check declares scopes over it.
fn reported_by_declared() -> Scopes {
    scopes_of(scope_pool().iter().take(3))
}

fn trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-trailer", HeaderValue::from_static("done"));
    trailers
}

// ---------------------------------------------------------------------------------------------
// The auth layer's token source: a credential of the case's scheme, reporting scopes.

#[derive(Debug)]
struct Reporting(Credential);

impl TokenSource for Reporting {
    async fn fetch(&self, _previous: Option<&Credential>) -> Result<Credential, Error> {
        Ok(self.0.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case.

#[derive(Debug)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What came back, read in full (up to a stall).
#[derive(Debug)]
struct Outcome {
    result: Result<Returned, BoxError>,
    /// How long the call took, on the paused clock.
    took: Duration,
}

#[derive(Debug)]
struct Returned {
    status: StatusCode,
    headers: HeaderMap,
    meaning: Option<Error>,
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    failed: bool,
    stalled: bool,
    /// The body's size hint before it was read.
    hint: (u64, Option<u64>),
}

async fn call<S, B>(service: S, request: Request<Full<Bytes>>, limit: Duration) -> Outcome
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = BoxError>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let start = Instant::now();
    let result = match tokio::time::timeout(limit, service.oneshot(request)).await {
        Ok(result) => result,
        Err(_) => Err("the call hung".into()),
    };
    let took = start.elapsed();
    let result = match result {
        Ok(response) => Ok(read(response).await),
        Err(err) => Err(err),
    };
    Outcome { result, took }
}

async fn read<B>(response: Response<B>) -> Returned
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let (parts, mut body) = response.into_parts();
    let hint = body.size_hint();
    let mut returned = Returned {
        hint: (hint.lower(), hint.upper()),
        status: parts.status,
        headers: parts.headers,
        meaning: parts.extensions.get::<Error>().cloned(),
        data: Vec::new(),
        trailers: None,
        failed: false,
        stalled: false,
    };
    loop {
        // An hour on the paused clock: passes at once when nothing else can happen.
        match tokio::time::timeout(Duration::from_secs(3600), body.frame()).await {
            Err(_) => {
                returned.stalled = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                returned.failed = true;
                break;
            }
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => returned.data.extend_from_slice(&data),
                Err(frame) => returned.trailers = frame.into_trailers().ok(),
            },
        }
    }
    returned
}

async fn run(mut case: Case) -> Result<(), String> {
    let mut catalog = Catalog::infobip();
    let mut table = rows().to_vec();
    if let Some(custom) = &case.custom {
        let row = &custom.row;
        let accepted: Vec<AuthScheme> = row
            .schemes
            .iter()
            .filter_map(|name| AuthScheme::from_openapi_name(name))
            .collect();
        match catalog.clone().with_operation(
            row.method.clone(),
            &row.template,
            scopes_of(&row.scopes),
            &accepted,
        ) {
            Ok(with) => {
                catalog = with;
                table = table_with(custom);
            }
            // Refused: a template matchit finds ambiguous. Nothing is added; draw from the data.
            Err(infobip_auth::ConfigError::Invalid { .. }) => case.custom = None,
            Err(err) => return Err(format!("adding {}: {err:?}", row.template)),
        }
    }
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer = case.answer.clone();
    let inner = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<Full<Bytes>>| {
            let seen = Arc::clone(&seen);
            let answer = answer.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                });
                let mut response = Response::new(answer.body());
                *response.status_mut() = answer.status;
                response
                    .headers_mut()
                    .insert("x-request-id", HeaderValue::from_static("abc-123"));
                Ok::<_, Infallible>(response)
            }
        })
    };

    let request = case.request().map_err(|e| format!("bad request: {e}"))?;
    let configure = |mut layer: ScopeCheckLayer| {
        layer = layer
            .preflight(case.preflight)
            .read_timeout(case.read_timeout);
        if case.reject_forbidden {
            layer = layer.reject_forbidden();
        }
        if let Some(limit) = case.read_limit {
            layer = layer.read_limit(limit);
        }
        layer
    };
    // Nothing the check does may wait longer than its read timeout.
    let limit = case.read_timeout + Duration::from_secs(1);
    let outcome = match case.wiring {
        Wiring::Standalone => {
            let mut layer = configure(ScopeCheckLayer::new().catalog(catalog.clone()));
            if let Some(held) = case.held_scopes() {
                layer = layer.held(held);
            }
            call(layer.layer(inner), request, limit).await
        }
        Wiring::Reported | Wiring::Declared | Wiring::CallersOwn => {
            let word = case.credential_word();
            let credential = Credential::new(word, "layer-token-2").map_err(|e| e.to_string())?;
            let reported = match case.wiring {
                Wiring::Declared => Some(reported_by_declared()),
                _ => case.held_scopes(),
            };
            let credential = match reported {
                Some(scopes) => credential.with_scopes(scopes),
                None => credential,
            };
            let auth = InfobipAuthLayer::new(Reporting(credential)).replay(ReplayPolicy::never());
            let mut check = configure(auth.scope_check().catalog(catalog.clone()));
            if let (Wiring::Declared, Some(held)) = (case.wiring, case.held_scopes()) {
                check = check.held(held);
            }
            // The credential is fetched first, so that the check could (wrongly) take its
            // scopes for a caller's own header's.
            auth.credential().await.map_err(|e| e.to_string())?;
            let service = auth.layer(check.layer(inner));
            call(service, request, limit).await
        }
    };
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    check(&case, &catalog, &table, &outcome, &seen)
}

// ---------------------------------------------------------------------------------------------
// The invariants.

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn check(
    case: &Case,
    catalog: &Catalog,
    table: &[Row],
    outcome: &Outcome,
    seen: &[Seen],
) -> Result<(), String> {
    let method = case.method();
    let path = case.path();
    let path_only = path
        .split_once('?')
        .map_or(path.as_str(), |(p, _)| p)
        .to_owned();
    let row = model_lookup(table, &method, &path);

    // The crate's catalogue agrees with the data, for the request drawn.
    let found = catalog.lookup(&method, &path);
    ensure!(
        found.map(|op| op.template) == row.map(|r| r.template.as_str()),
        "lookup of {method} {path}: {:?}, the data says {:?}",
        found.map(|op| op.template),
        row.map(|r| &r.template)
    );

    let (authorization, _) = case.sent_authorization();
    let sent_scheme = authorization
        .as_deref()
        .and_then(|a| a.split(' ').next())
        .and_then(openapi_scheme);
    let held = case.expected_held();
    let required = row.map(|r| scopes_of(&r.scopes));

    // Pre-flight, as documented.
    let scheme_refused = row.is_some_and(|r| {
        sent_scheme.is_some_and(|s| !r.schemes.is_empty() && !r.schemes.iter().any(|a| a == s))
    });
    let scopes_refused = row.is_some_and(|r| {
        held.as_ref().is_some_and(|h| {
            !r.scopes.is_empty() && !r.scopes.iter().any(|s| h.iter().any(|x| x.as_str() == s))
        })
    });
    // A path starting with two slashes (or backslashes) names a host: it is no relative URI.
    let names_a_host = case
        .path()
        .bytes()
        .take(2)
        .filter(|&b| b == b'/' || b == b'\\')
        .count()
        == 2;
    let judged = match case.host() {
        Host::Infobip => true,
        Host::Relative => !names_a_host,
        Host::Elsewhere => false,
    };
    let refused = judged && case.preflight && (scheme_refused || scopes_refused);

    ensure!(outcome.took <= case.read_timeout, "took {:?}", outcome.took);

    if refused {
        ensure!(
            seen.is_empty(),
            "refused before sending, yet {} request(s) reached the server",
            seen.len()
        );
        let Err(err) = &outcome.result else {
            return Err("not refused before sending".into());
        };
        let error = Error::find(&**err).ok_or_else(|| format!("untyped error: {err}"))?;
        ensure!(outcome.took.is_zero(), "a refusal took {:?}", outcome.took);
        if scheme_refused {
            let ErrorKind::SchemeNotAccepted {
                method: refused_method,
                endpoint,
                scheme,
                accepted,
                ..
            } = error.kind()
            else {
                return Err(format!("scheme refusal expected: {error}"));
            };
            ensure!(*refused_method == method, "method {refused_method}");
            ensure!(
                Some(endpoint.as_str()) == row.map(|r| r.template.as_str()),
                "endpoint {endpoint}"
            );
            let accepted: Vec<&str> = accepted.iter().map(|a| a.openapi_name()).collect();
            let expected: Vec<&str> = row
                .map(|r| r.schemes.iter().map(String::as_str).collect())
                .unwrap_or_default();
            ensure!(
                accepted == expected,
                "accepted {accepted:?}, the data says {expected:?}"
            );
            ensure!(
                Some(scheme.openapi_name()) == sent_scheme,
                "scheme {scheme:?}"
            );
        } else {
            let forbidden = error
                .forbidden()
                .ok_or_else(|| format!("forbidden expected: {error}"))?;
            ensure!(forbidden.method == method, "method {}", forbidden.method);
            ensure!(
                Some(forbidden.endpoint.as_str()) == row.map(|r| r.template.as_str()),
                "endpoint {}",
                forbidden.endpoint
            );
            ensure!(
                forbidden.required == required,
                "required {:?}, the data says {:?}",
                forbidden.required,
                required
            );
            ensure!(
                forbidden.held == held,
                "held {:?}, expected {:?}",
                forbidden.held,
                held
            );
            ensure!(forbidden.api.is_none(), "a server answer on a refusal");
        }
        return Ok(());
    }

    // Sent, unchanged, exactly once.
    ensure!(
        seen.len() == 1,
        "{} request(s) reached the server (one expected) for {method} {path}: {:?}",
        seen.len(),
        outcome.result.as_ref().err()
    );
    let got = &seen[0];
    let original = case.request().map_err(|e| e.to_string())?;
    ensure!(
        got.method == method && got.uri == original.uri().to_string(),
        "sent as {} {}",
        got.method,
        got.uri
    );
    ensure!(
        got.body.as_ref() == case.request_body.as_slice(),
        "request body changed"
    );
    ensure!(
        got.headers.get("x-case") == original.headers().get("x-case"),
        "headers changed"
    );
    ensure!(
        got.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) == authorization.as_deref(),
        "sent with {:?}",
        got.headers.get(AUTHORIZATION)
    );

    let status = case.answer.status;
    let classified =
        judged && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN);
    let (prefix, waited) = case.answer.read_prefix(case.read_limit());
    let expected_took = if classified && waited {
        case.read_timeout
    } else {
        Duration::ZERO
    };
    ensure!(
        outcome.took == expected_took,
        "took {:?}, expected {:?}",
        outcome.took,
        expected_took
    );

    // What the error must say of the server's words.
    let check_api = |api: &infobip_auth::ApiError| -> Result<(), String> {
        ensure!(api.status() == status, "api status {}", api.status());
        // Read whole, and not cut by the server: the shape's own words.
        let whole = prefix == case.answer.bytes() && prefix == case.answer.uncut();
        match case.answer.words() {
            Some((code, text)) if whole => {
                ensure!(
                    api.code() == Some(code.as_str()) && api.text() == Some(text.as_str()),
                    "read {:?}/{:?}, the body says {code:?}/{text:?}",
                    api.code(),
                    api.text()
                );
            }
            // A cut object, or no shape at all: no words, the first bytes kept.
            _ => {
                ensure!(
                    api.code().is_none() && api.text().is_none(),
                    "words {:?}/{:?} read from {:?}",
                    api.code(),
                    api.text(),
                    String::from_utf8_lossy(&prefix)
                );
                if prefix.is_empty() {
                    ensure!(api.raw().is_none(), "raw of nothing: {:?}", api.raw());
                } else {
                    // A character the body ends in the middle of is left out: it may be cut.
                    let lossy = String::from_utf8_lossy(&prefix);
                    let raw = api.raw().ok_or_else(|| format!("no raw of {lossy:?}"))?;
                    ensure!(lossy.starts_with(raw), "raw {raw:?} of {lossy:?}");
                }
            }
        }
        Ok(())
    };
    let check_forbidden = |error: &Error| -> Result<(), String> {
        let forbidden = error
            .forbidden()
            .ok_or_else(|| format!("forbidden expected: {error}"))?;
        ensure!(forbidden.method == method, "method {}", forbidden.method);
        let endpoint = row.map_or(path_only.as_str(), |r| r.template.as_str());
        ensure!(
            forbidden.endpoint == endpoint,
            "endpoint {}, expected {endpoint}",
            forbidden.endpoint
        );
        let required = required.clone().filter(|r| !r.is_empty());
        ensure!(
            forbidden.required == required,
            "required {:?}, the data says {:?}",
            forbidden.required,
            required
        );
        ensure!(
            forbidden.held == held,
            "held {:?}, expected {:?}",
            forbidden.held,
            held
        );
        check_api(forbidden.api.as_ref().ok_or("no server answer")?)
    };

    if classified && status == StatusCode::FORBIDDEN && case.reject_forbidden {
        let Err(err) = &outcome.result else {
            return Err("a 403 with reject_forbidden came back as a response".into());
        };
        let error = Error::find(&**err).ok_or_else(|| format!("untyped error: {err}"))?;
        return check_forbidden(error);
    }
    let returned = match &outcome.result {
        Ok(returned) => returned,
        Err(err) => {
            return Err(format!(
                "failed: {err} ({:?})",
                Error::find(&**err).map(Error::kind)
            ));
        }
    };
    ensure!(returned.status == status, "status {}", returned.status);
    ensure!(
        returned.headers.get("x-request-id").is_some(),
        "headers lost"
    );
    match (status, &returned.meaning) {
        (StatusCode::FORBIDDEN, Some(error)) => check_forbidden(error)?,
        (StatusCode::UNAUTHORIZED, Some(error)) => {
            let ErrorKind::InvalidCredentials(api) = error.kind() else {
                return Err(format!("invalid credentials expected: {error}"));
            };
            check_api(api)?;
        }
        (_, None) if !classified => {}
        (_, meaning) => return Err(format!("{status} carried {meaning:?}")),
    }

    // The body, byte for byte, with what ended it.
    ensure!(
        returned.data == case.answer.bytes(),
        "body changed: {} bytes back of {}",
        returned.data.len(),
        case.answer.bytes().len()
    );
    let length = returned.data.len() as u64;
    ensure!(
        returned.hint.0 <= length && returned.hint.1.is_none_or(|upper| upper >= length),
        "size hint {:?} for {length} bytes",
        returned.hint
    );
    let ending = &case.answer.ending;
    ensure!(
        returned.failed == matches!(ending, Ending::Fails),
        "failed: {}",
        returned.failed
    );
    ensure!(
        returned.stalled == matches!(ending, Ending::Stalls),
        "stalled: {}",
        returned.stalled
    );
    ensure!(
        returned.trailers.as_ref() == matches!(ending, Ending::Trailers).then(trailers).as_ref(),
        "trailers {:?}",
        returned.trailers
    );
    Ok(())
}

fn run_case(case: Case) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(run(case))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_scope_check_keeps_its_promises(case in case()) {
        run_case(case).map_err(TestCaseError::fail)?;
    }
}

/// The crate's catalogue holds exactly the data's operations, scopes and schemes.
#[test]
fn the_catalogue_is_the_data() {
    let catalog = Catalog::infobip();
    assert_eq!(catalog.len(), rows().len());
    for (op, row) in catalog.operations().zip(rows()) {
        assert_eq!(
            (op.method, op.template),
            (&row.method, row.template.as_str())
        );
        assert_eq!(op.required, &scopes_of(&row.scopes), "{}", row.template);
        let accepted: Vec<&str> = op.accepted.iter().map(|a| a.openapi_name()).collect();
        assert_eq!(accepted, row.schemes, "{}", row.template);
        assert!(
            AuthScheme::ALL.iter().all(|s| op.accepts(*s)
                == (row.schemes.is_empty() || accepted.contains(&s.openapi_name())))
        );
    }
}
