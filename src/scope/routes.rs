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

    /// The value of the most specific template that matches `path`. Allocates nothing.
    ///
    /// A parameter never matches an empty segment: matchit lets one in the middle of a path
    /// (`/x//y` for `/x/{id}/y`), but no operation takes an empty path parameter.
    pub(super) fn at(&self, method: &Method, path: &str) -> Option<usize> {
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
