//! `Scope` and `Scopes`: the names Infobip grants access by.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::ConfigError;

/// One Infobip API scope, written as Infobip writes it: `message:send`, `sms:manage`,
/// `inbound-message:read`, `web:sdk`.
///
/// Scopes are lowercase words of ASCII letters, digits, `-`, `_` and `.` joined by `:`.
///
/// ```
/// use infobip_auth::Scope;
/// let scope: Scope = "message:send".parse()?;
/// assert_eq!(scope.as_str(), "message:send");
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Arc<str>);

impl Scope {
    /// Parses a scope name.
    ///
    /// # Errors
    /// A [`ConfigError`] when the name is empty, has an empty segment or a character Infobip
    /// never uses in a scope (an uppercase letter among them: names are compared exactly).
    ///
    /// ```
    /// use infobip_auth::Scope;
    /// assert!(Scope::new("sms:message:send").is_ok());
    /// assert!(Scope::new("sms::send").is_err());
    /// ```
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.');
        let valid = !name.is_empty()
            && name
                .split(':')
                .all(|part| !part.is_empty() && part.chars().all(valid_char));
        if valid {
            Ok(Self(Arc::from(name)))
        } else {
            Err(ConfigError::InvalidScope {
                name: name.to_owned(),
            })
        }
    }

    /// The scope as Infobip writes it.
    ///
    /// ```
    /// # use infobip_auth::Scope;
    /// assert_eq!(Scope::new("sms:manage")?.as_str(), "sms:manage");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Scope {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A set of scopes, ordered by name.
///
/// An endpoint's `Scopes` are alternatives: a credential holding any one of them is granted
/// access (Infobip's API authorization page), which is what [`Scopes::grants_any`] checks.
///
/// ```
/// use infobip_auth::Scopes;
/// let required: Scopes = "message:send,sms:message:send,sms:manage".parse()?;
/// let held: Scopes = "sms:manage".parse()?;
/// assert!(held.grants_any(&required));
/// assert_eq!(required.to_string(), "message:send, sms:manage, sms:message:send");
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Scopes(BTreeSet<Scope>);

impl Scopes {
    /// An empty set: a credential declared with it holds no scope. Parsing an empty string
    /// is an error instead (see [`FromStr`](#impl-FromStr-for-Scopes)).
    ///
    /// ```
    /// assert!(infobip_auth::Scopes::new().is_empty());
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this set, held by a credential, contains at least one of `required`.
    ///
    /// ```
    /// # use infobip_auth::Scopes;
    /// let held: Scopes = "inbound-message:read".parse()?;
    /// assert!(!held.grants_any(&"message:send,sms:manage".parse()?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn grants_any(&self, required: &Scopes) -> bool {
        required.0.iter().any(|scope| self.0.contains(scope))
    }

    /// Whether the set holds `scope`.
    ///
    /// ```
    /// # use infobip_auth::{Scope, Scopes};
    /// let held: Scopes = "sms:manage".parse()?;
    /// assert!(held.contains(&Scope::new("sms:manage")?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// Adds a scope; returns whether it was new.
    ///
    /// ```
    /// # use infobip_auth::{Scope, Scopes};
    /// let mut scopes = Scopes::new();
    /// assert!(scopes.insert(Scope::new("web:sdk")?));
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn insert(&mut self, scope: Scope) -> bool {
        self.0.insert(scope)
    }

    /// Whether the set is empty.
    ///
    /// ```
    /// assert!(infobip_auth::Scopes::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many scopes the set holds.
    ///
    /// ```
    /// # use infobip_auth::Scopes;
    /// assert_eq!("a:b,c:d".parse::<Scopes>()?.len(), 2);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The scopes, in name order.
    ///
    /// ```
    /// # use infobip_auth::Scopes;
    /// let scopes: Scopes = "b:x,a:y".parse()?;
    /// let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    /// assert_eq!(names, ["a:y", "b:x"]);
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Adds each scope, as [`insert`](Scopes::insert) does: a set built from several sources
/// (configuration, a token answer) without collecting it again.
impl Extend<Scope> for Scopes {
    fn extend<I: IntoIterator<Item = Scope>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

impl<'a> Extend<&'a Scope> for Scopes {
    fn extend<I: IntoIterator<Item = &'a Scope>>(&mut self, iter: I) {
        self.0.extend(iter.into_iter().cloned());
    }
}

/// The scopes, in name order, taken out of the set.
impl IntoIterator for Scopes {
    type Item = Scope;
    type IntoIter = std::collections::btree_set::IntoIter<Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Scopes {
    type Item = &'a Scope;
    type IntoIter = std::collections::btree_set::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Parses a list separated by commas and/or white space, as Infobip's pages and the OpenAPI
/// `x-scopes` lists write them.
///
/// A list with no scope in it (empty, or only separators) is a
/// [`ConfigError::Empty`], not the empty set: a credential declared to hold no scope is
/// refused every endpoint that needs one, which an unset environment variable should not
/// cause unnoticed. Declare an empty set with [`Scopes::new`].
///
/// ```
/// use infobip_auth::{ConfigError, Scopes};
/// assert_eq!("sms:manage, web:sdk".parse::<Scopes>()?.len(), 2);
/// assert_eq!(" ".parse::<Scopes>(), Err(ConfigError::Empty { what: "scope list" }));
/// # Ok::<(), ConfigError>(())
/// ```
impl FromStr for Scopes {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let scopes = Self::parse_list(s)?;
        if scopes.is_empty() {
            return Err(ConfigError::Empty { what: "scope list" });
        }
        Ok(scopes)
    }
}

impl Scopes {
    /// Parses a list as [`FromStr`] does, an empty one giving the empty set: for the
    /// catalogue, where an operation that needs no scope has an empty list.
    pub(crate) fn parse_list(s: &str) -> Result<Self, ConfigError> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(Scope::new)
            .collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_every_shape_infobip_uses() {
        for name in [
            "message:send",
            "inbound-message:read",
            "web:sdk",
            "mobile-app-messaging:sdk",
            "sms:manage",
            "2fa:pin:send",
        ] {
            assert_eq!(
                Scope::new(name).map(|s| s.to_string()).ok().as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn rejects_malformed_names() {
        for name in [
            "",
            ":",
            "sms:",
            ":send",
            "sms send",
            "sms:send\n",
            "ünï:code",
        ] {
            assert!(Scope::new(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn uppercase_names_are_refused_as_documented() -> Result<(), ConfigError> {
        // "Scopes are lowercase words": a key declared with `SMS:MANAGE` would otherwise be
        // refused pre-flight for every SMS endpoint, as holding none of `sms:manage`, ….
        assert!(Scope::new("SMS:MANAGE").is_err());
        assert!("message:send,Sms:Manage".parse::<Scopes>().is_err());
        Ok(())
    }

    #[test]
    fn a_list_with_no_scope_is_refused_and_the_empty_set_is_explicit() {
        for text in ["", " ", "\t\n", ",", " , ,"] {
            assert_eq!(
                text.parse::<Scopes>(),
                Err(ConfigError::Empty { what: "scope list" }),
                "{text:?}"
            );
            assert_eq!(Scopes::parse_list(text), Ok(Scopes::new()), "{text:?}");
        }
        assert_eq!(
            ConfigError::Empty { what: "scope list" }.to_string(),
            "the scope list is empty"
        );
    }

    #[test]
    fn any_of_semantics() -> Result<(), ConfigError> {
        let required: Scopes = "message:send, sms:message:send, sms:manage".parse()?;
        assert!(Scopes::from_str("sms:manage")?.grants_any(&required));
        assert!(!Scopes::from_str("inbound-message:read")?.grants_any(&required));
        assert!(!Scopes::new().grants_any(&required));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_scope_list_parses_or_names_the_refused_scope(
            text in prop_oneof![".{0,40}", "[a-z:, \t\n_.-]{0,40}", "[a-zA-Z0-9:,é ]{0,40}"],
        ) {
            match text.parse::<Scopes>() {
                Ok(scopes) => {
                    // What is shown reads back as the same set.
                    prop_assert_eq!(scopes.to_string().parse::<Scopes>().ok(), Some(scopes.clone()));
                    for scope in &scopes {
                        prop_assert!(Scope::new(scope.as_str()).is_ok());
                    }
                }
                Err(ConfigError::Empty { what }) => {
                    prop_assert_eq!(what, "scope list");
                    prop_assert!(text.split(|c: char| c == ',' || c.is_whitespace()).all(str::is_empty));
                }
                Err(ConfigError::InvalidScope { name }) => {
                    prop_assert!(!name.is_empty() && text.contains(&name));
                    prop_assert!(Scope::new(&name).is_err());
                }
                Err(other) => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
