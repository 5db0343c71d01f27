//! Path matching for the catalogue: [`matchit`] routers arranged so that a lookup allocates
//! nothing.
//!
//! matchit allocates a small backtracking stack when a path walks past a node that has both a
//! static child and a parameter child (`/whatsapp/1/senders/…` next to `/whatsapp/1/{sender}/…`):
//! 64 of Infobip's 943 operations would pay that allocation on every lookup. So each method's
//! templates are spread over a few routers ("layers"), a template going to the first layer where
//! no segment of it sits next to a parameter at the same place (or the reverse). A lookup asks
//! every layer and keeps the most specific match, which is the match a single router would give:
//! at the first segment where two matching templates differ, a static segment beats a parameter
//! with a literal prefix or suffix, which beats a standalone parameter, which beats a catch-all.

#[cfg(feature = "mock")]
use std::borrow::Cow;
use std::collections::HashSet;

use http::Method;
use matchit::{InsertError, Router};

/// Every method's routers.
#[derive(Clone, Default)]
pub(super) struct Routes {
    /// A `Vec`, not a map: there are at most seven methods and comparing them is cheap.
    methods: Vec<(Method, Vec<Layer>)>,
}

/// One router where no node has both a static and a parameter child.
#[derive(Clone, Default)]
struct Layer {
    router: Router<Route>,
    /// For each segment of each template: the shape of the template before it, and whether the
    /// segment starts with a parameter.
    branches: HashSet<(Box<str>, bool)>,
}

#[derive(Clone)]
struct Route {
    /// What the caller stored (an index into the catalogue's entries).
    value: usize,
    /// How specific each segment is; lower is more specific.
    ranks: Box<[u8]>,
}

impl Routes {
    /// Adds `template`, whose [`shape`] is `shape`, with `value`.
    pub(super) fn insert(
        &mut self,
        method: &Method,
        template: &str,
        shape: &str,
        value: usize,
    ) -> Result<(), InsertError> {
        let position = match self.methods.iter().position(|(m, _)| m == method) {
            Some(position) => position,
            None => {
                self.methods.push((method.clone(), Vec::new()));
                self.methods.len() - 1
            }
        };
        let Some((_, layers)) = self.methods.get_mut(position) else {
            return Ok(());
        };
        let branches = branches(shape);
        let fits = |layer: &Layer| {
            branches
                .iter()
                .all(|(before, wild)| !layer.branches.contains(&(before.clone(), !wild)))
        };
        let layer = match layers.iter().position(fits) {
            Some(layer) => layer,
            None => {
                layers.push(Layer::default());
                layers.len() - 1
            }
        };
        let Some(layer) = layers.get_mut(layer) else {
            return Ok(());
        };
        let route = Route {
            value,
            ranks: shape.split('/').map(rank).collect(),
        };
        layer.router.insert(template, route)?;
        layer.branches.extend(branches);
        Ok(())
    }

    /// The value of the template `path` calls, read as servers read it: percent-encoded
    /// unreserved characters decoded first (RFC 3986 §6.2.2.2: `/sm%73` is `/sms`), then dot
    /// segments resolved (§5.2.4: `/sms/2/../1/logs` is `/sms/1/logs`), and a trailing slash
    /// ignored when the path matches nothing with it. Case is kept: paths are case-sensitive.
    /// A path of over [`DECODED_MAX`] bytes is matched as written, or not at all when it has
    /// dot segments. Allocates nothing.
    pub(super) fn find(&self, method: &Method, path: &str) -> Option<usize> {
        if path.contains('%') || has_dot_segment(path) {
            self.find_normalized(method, path)
        } else {
            self.find_written(method, path)
        }
    }

    #[cold]
    #[inline(never)]
    fn find_normalized(&self, method: &Method, path: &str) -> Option<usize> {
        let (mut decoded, mut resolved) = ([0; DECODED_MAX], [0; DECODED_MAX]);
        self.find_written(method, normalize(path, &mut decoded, &mut resolved)?)
    }

    /// As [`Routes::at`], then without a trailing slash.
    fn find_written(&self, method: &Method, path: &str) -> Option<usize> {
        self.at(method, path).or_else(|| {
            let without = path.strip_suffix('/').filter(|rest| !rest.is_empty())?;
            self.at(method, without)
        })
    }

    /// The value of the most specific template that matches `path` as written. Allocates
    /// nothing.
    ///
    /// A parameter never matches an empty segment: matchit lets one in the middle of a path
    /// (`/x//y` for `/x/{id}/y`), but no operation takes an empty path parameter.
    fn at(&self, method: &Method, path: &str) -> Option<usize> {
        let (_, layers) = self.methods.iter().find(|(m, _)| m == method)?;
        let mut best: Option<&Route> = None;
        for layer in layers {
            if let Ok(found) = layer.router.at(path)
                && found.params.iter().all(|(_, value)| !value.is_empty())
                && best.is_none_or(|best| found.value.ranks < best.ranks)
            {
                best = Some(found.value);
            }
        }
        best.map(|route| route.value)
    }

    /// How many routers `method` needs (for tests).
    #[cfg(test)]
    pub(super) fn layers(&self, method: &Method) -> usize {
        self.methods
            .iter()
            .find(|(m, _)| m == method)
            .map_or(0, |(_, layers)| layers.len())
    }
}

/// The longest path [`Routes::find`] decodes: it decodes on the stack, so as to allocate
/// nothing. Infobip's paths, parameters filled in, are far shorter.
const DECODED_MAX: usize = 2048;

/// `path` read as a server reads it, as [`Routes::find`] reads it: percent-encoded unreserved
/// characters decoded, then dot segments resolved, in `decoded` and `resolved` when that
/// changes it. `None` when it has dot segments that cannot be resolved (it is too long, or
/// does not start with `/`): matched as written, a dot segment would fill a parameter of an
/// operation the server does not run, and no operation is better than the wrong one.
fn normalize<'a>(
    path: &'a str,
    decoded: &'a mut [u8; DECODED_MAX],
    resolved: &'a mut [u8; DECODED_MAX],
) -> Option<&'a str> {
    let path = if path.contains('%') {
        decode_unreserved(path, decoded).unwrap_or(path)
    } else {
        path
    };
    if has_dot_segment(path) {
        remove_dot_segments(path, resolved)
    } else {
        Some(path)
    }
}

/// [`normalize`] for a reader that may allocate (the embedded server), so that it routes a
/// path as the catalogue does.
#[cfg(feature = "mock")]
pub(crate) fn read_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') && !has_dot_segment(path) {
        return Some(Cow::Borrowed(path));
    }
    let (mut decoded, mut resolved) = ([0; DECODED_MAX], [0; DECODED_MAX]);
    normalize(path, &mut decoded, &mut resolved).map(|read| Cow::Owned(read.to_owned()))
}

/// `path` with every percent-encoded unreserved character (`A-Z a-z 0-9 - . _ ~`) decoded, in
/// `buffer`; `None` when it does not fit. Other encodings stay: `%2F` is no `/`.
fn decode_unreserved<'b>(path: &str, buffer: &'b mut [u8]) -> Option<&'b str> {
    let mut rest = path.as_bytes();
    let mut len = 0;
    while let Some((&first, after)) = rest.split_first() {
        let (byte, after) = match after {
            [high, low, tail @ ..] if first == b'%' => match unreserved(*high, *low) {
                Some(decoded) => (decoded, tail),
                None => (first, after),
            },
            _ => (first, after),
        };
        *buffer.get_mut(len)? = byte;
        len += 1;
        rest = after;
    }
    // Only ASCII triplets were replaced, by ASCII: still UTF-8.
    std::str::from_utf8(buffer.get(..len)?).ok()
}

/// Whether a segment of `path` is `.` or `..`.
fn has_dot_segment(path: &str) -> bool {
    path.contains("/.") && path.split('/').any(|segment| matches!(segment, "." | ".."))
}

/// `path` with its `.` and `..` segments resolved as RFC 3986 §5.2.4 does for an absolute
/// path (a `..` above the root stays at the root), in `buffer`; `None` when it does not fit or
/// `path` does not start with `/`.
fn remove_dot_segments<'b>(path: &str, buffer: &'b mut [u8]) -> Option<&'b str> {
    fn push(buffer: &mut [u8], len: &mut usize, bytes: &[u8]) -> Option<()> {
        let end = len.checked_add(bytes.len())?;
        buffer.get_mut(*len..end)?.copy_from_slice(bytes);
        *len = end;
        Some(())
    }
    let mut len = 0;
    let mut segments = path.strip_prefix('/')?.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => {
                if segment == ".." {
                    // Back to the `/` that starts the last segment kept.
                    len = buffer
                        .get(..len)?
                        .iter()
                        .rposition(|&byte| byte == b'/')
                        .unwrap_or(0);
                }
                // A dot segment at the end leaves the path ending in `/`.
                if last {
                    push(buffer, &mut len, b"/")?;
                }
            }
            _ => {
                push(buffer, &mut len, b"/")?;
                push(buffer, &mut len, segment.as_bytes())?;
            }
        }
    }
    if len == 0 {
        push(buffer, &mut len, b"/")?;
    }
    // Whole segments of a `str`, split at ASCII `/`: still UTF-8.
    std::str::from_utf8(buffer.get(..len)?).ok()
}

/// The unreserved character two hex digits encode, if they encode one.
fn unreserved(high: u8, low: u8) -> Option<u8> {
    let digit = |hex: u8| char::from(hex).to_digit(16);
    let byte = u8::try_from(digit(high)? * 16 + digit(low)?).ok()?;
    (byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')).then_some(byte)
}

/// The template with every parameter name removed (`/x/{id}` → `/x/{}`, `/x/{*rest}` →
/// `/x/{*}`), so that two templates differing only in names are recognised as one. Escaped
/// braces (`{{`, `}}`) stay as they are.
///
/// # Errors
/// When the template does not start with `/` or has an unmatched brace.
pub(super) fn shape(template: &str) -> Result<String, &'static str> {
    if !template.starts_with('/') {
        return Err("must start with `/`");
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        if let Some(tail) = after.strip_prefix("{{") {
            out.push_str("{{");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("}}") {
            out.push_str("}}");
            rest = tail;
        } else if let Some(param) = after.strip_prefix('{') {
            let end = param.find('}').ok_or("has a `{` without its `}`")?;
            out.push_str(if param.starts_with('*') { "{*}" } else { "{}" });
            rest = param.get(end + 1..).unwrap_or_default();
        } else {
            return Err("has a `}` without its `{`");
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// For each segment of a shape: the shape before it and whether it starts with a parameter.
fn branches(shape: &str) -> Vec<(Box<str>, bool)> {
    shape
        .match_indices('/')
        .map(|(i, _)| {
            let (before, segment) = shape.split_at(i + 1);
            (before.into(), starts_with_param(segment))
        })
        .collect()
}

fn starts_with_param(segment: &str) -> bool {
    segment.starts_with('{') && !segment.starts_with("{{")
}

/// How specific a segment of a shape is, in matchit's order of priority.
fn rank(segment: &str) -> u8 {
    let has_param = segment.split("{{").any(|part| part.contains('{'));
    match segment {
        _ if !has_param => 0,
        "{}" => 2,
        "{*}" => 3,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_ignore_parameter_names() {
        assert_eq!(shape("/a/{x}/b/{y}"), Ok("/a/{}/b/{}".to_owned()));
        assert_eq!(shape("/a/{*rest}"), Ok("/a/{*}".to_owned()));
        assert_eq!(shape("/a/{{lit}}/{x}"), Ok("/a/{{lit}}/{}".to_owned()));
        assert!(shape("a/{x}").is_err());
        assert!(shape("/a/{x").is_err());
        assert!(shape("/a/x}").is_err());
    }

    #[test]
    fn ranks_follow_matchit_priorities() {
        assert_eq!(
            ["abc", "img-{}", "{}.png", "{}", "{*}", "{{lit}}"].map(rank),
            [0, 1, 1, 2, 3, 0]
        );
    }

    #[test]
    fn only_unreserved_characters_are_decoded() {
        let mut buffer = [0; 32];
        let mut decode = |path| decode_unreserved(path, &mut buffer).map(str::to_owned);
        for (path, decoded) in [
            ("/%41%7a%30%2D%2e%5F%7E", "/Az0-._~"),
            ("/a%2Fb%20c%25%3F", "/a%2Fb%20c%25%3F"),
            ("/%%414%", "/%A4%"),
            ("/%4", "/%4"),
            ("/%G1%1G", "/%G1%1G"),
            ("/é%C3%A9", "/é%C3%A9"),
        ] {
            assert_eq!(decode(path).as_deref(), Some(decoded), "{path}");
        }
        assert_eq!(decode(&"/a".repeat(17)), None, "longer than the buffer");
    }

    #[test]
    fn dot_segments_are_removed_as_rfc_3986_says() {
        let mut buffer = [0; 32];
        let mut resolve = |path| remove_dot_segments(path, &mut buffer).map(str::to_owned);
        for (path, resolved) in [
            ("/a/b/c/./../../g", "/a/g"),
            ("/a/./b", "/a/b"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../a", "/a"),
            ("/a/../..", "/"),
            ("/a/..b/.c/", "/a/..b/.c/"),
            ("/", "/"),
        ] {
            assert_eq!(resolve(path).as_deref(), Some(resolved), "{path}");
        }
        assert_eq!(resolve("a/./b"), None, "not absolute");
        assert_eq!(resolve(&"/a".repeat(17)), None, "longer than the buffer");
        assert!(has_dot_segment("/a/../b") && has_dot_segment("/a/."));
        assert!(!has_dot_segment("/a/..b/c.") && !has_dot_segment("/a.b"));
    }

    proptest::proptest! {
        #[test]
        fn any_path_resolves_to_one_without_dot_segments(
            segments in proptest::collection::vec(
                proptest::prop_oneof!["\\.{1,2}", "[a-z.]{0,3}", ".{0,3}"],
                0..8,
            ),
        ) {
            let path = format!("/{}", segments.join("/"));
            let mut buffer = [0; 64];
            let resolved = remove_dot_segments(&path, &mut buffer);
            proptest::prop_assert!(resolved.is_some() || path.len() >= 63, "{}", path);
            if let Some(resolved) = resolved {
                proptest::prop_assert!(resolved.starts_with('/'), "{}", resolved);
                proptest::prop_assert!(!has_dot_segment(resolved), "{} -> {}", path, resolved);
                proptest::prop_assert!(resolved.len() <= path.len() + 1);
            }
        }
    }

    #[test]
    fn static_and_parameter_siblings_go_to_separate_layers() -> Result<(), InsertError> {
        let mut routes = Routes::default();
        for (value, template) in ["/x/{a}/y", "/x/abc/y", "/x/abc/{b}", "/z/{c}"]
            .into_iter()
            .enumerate()
        {
            let shape = shape(template).unwrap_or_default();
            routes.insert(&Method::GET, template, &shape, value)?;
        }
        assert_eq!(routes.layers(&Method::GET), 3);
        let at = |path| routes.at(&Method::GET, path);
        assert_eq!(at("/x/abc/y"), Some(1));
        assert_eq!(at("/x/abc/q"), Some(2));
        assert_eq!(at("/x/abd/y"), Some(0));
        assert_eq!(at("/z/1"), Some(3));
        assert_eq!(at("/x/abd/q"), None);
        Ok(())
    }
}
