//! `Scope` and `Scopes`: the names an API grants access by, Infobip's and any OAuth 2.0
//! server's.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::ConfigError;

/// One scope, written as the API writes it: Infobip's `message:send` or `sms:manage`, or
/// another OAuth 2.0 server's `Messages.Send`, `https://graph.microsoft.com/.default`, `repo`,
/// `read:org`, `openid`.
///
/// A scope is an RFC 6749 §3.3 scope token (visible ASCII but `"` and `\`) with no `,`, which
/// separates the scopes of a list (see [`Scopes`]). Names are compared exactly, case included,
/// as RFC 6749 compares them: `sms:manage` and `SMS:MANAGE` are two scopes.
///
/// ```
/// use infobip_auth::Scope;
/// let scope: Scope = "message:send".parse()?;
/// assert_eq!(scope.as_str(), "message:send");
/// let graph: Scope = "https://graph.microsoft.com/.default".parse()?;
/// assert_ne!(graph, "https://graph.microsoft.com/.DEFAULT".parse()?);
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scope(Arc<str>);

impl Scope {
    /// Parses a scope name.
    ///
    /// # Errors
    /// [`ConfigError::InvalidScope`] when the name is empty or holds a character no scope
    /// token has (a space, a control character, a non-ASCII one, `"` or `\`) or a `,`.
    ///
    /// ```
    /// use infobip_auth::{ConfigError, Scope};
    /// assert!(Scope::new("sms:message:send").is_ok());
    /// assert!(Scope::new("Messages.Send").is_ok());
    /// assert_eq!(
    ///     Scope::new("sms manage"),
    ///     Err(ConfigError::InvalidScope { name: "sms manage".into() })
    /// );
    /// ```
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        // `,` is kept for lists.
        if is_oauth_scope_token(name) && !name.contains(',') {
            Ok(Self(Arc::from(name)))
        } else {
            Err(ConfigError::InvalidScope {
                name: name.to_owned(),
            })
        }
    }

    /// The scope as the API writes it.
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

/// Whether `name` is an RFC 6749 §3.3 scope token: `1*( %x21 / %x23-5B / %x5D-7E )`, visible
/// ASCII but `"` and `\`.
pub(crate) fn is_oauth_scope_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| matches!(c, '!'..='~') && !matches!(c, '"' | '\\'))
}

/// A set of scopes, ordered by name.
///
/// An endpoint's `Scopes` are alternatives: a credential holding any one of them is granted
/// access (Infobip's API authorization page), which is what [`Scopes::grants_any`] checks.
///
/// A list is written with commas, `"a, b"`, or spaces, `"a b"` (RFC 6749's `scope`), and
/// shown with commas; a `,` is therefore never part of a scope's name.
///
/// ```
/// use infobip_auth::Scopes;
/// let required: Scopes = "message:send,sms:message:send,sms:manage".parse()?;
/// let held: Scopes = "sms:manage".parse()?;
/// assert!(held.grants_any(&required));
/// assert_eq!(required.to_string(), "message:send, sms:manage, sms:message:send");
/// let granted: Scopes = "openid Mail.Send https://graph.microsoft.com/.default".parse()?;
/// assert_eq!(granted.to_string(), "Mail.Send, https://graph.microsoft.com/.default, openid");
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

/// Parses a list separated by commas and/or white space: `"a, b"` as Infobip's pages and
/// its OpenAPI `x-scopes` lists write them, `"a b"` as an OAuth 2.0 `scope` field does.
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

    /// RFC 6749 §3.3's scope-token: one or more of `%x21 / %x23-5B / %x5D-7E`, here without
    /// `,`. Written out rather than with ranges, as a second reading of the grammar.
    fn is_scope_token(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            && !name.contains(',')
    }

    #[test]
    fn a_scope_is_any_rfc_6749_scope_token_without_a_comma() {
        const ALL_ALLOWED: &str = "!#$%&'()*+-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`\
                                   abcdefghijklmnopqrstuvwxyz{|}~";
        // (name, whether it is a scope)
        let table = [
            // Infobip's.
            ("message:send", true),
            ("inbound-message:read", true),
            ("mobile-app-messaging:sdk", true),
            ("2fa:pin:send", true),
            // Other servers'.
            ("Messages.Send", true),
            ("https://graph.microsoft.com/.default", true),
            ("repo", true),
            ("read:org", true),
            ("api://x/y", true),
            ("openid", true),
            ("https://www.googleapis.com/auth/drive.readonly", true),
            // Every character a scope token may hold, and the ends of its ranges.
            (ALL_ALLOWED, true),
            ("!", true),
            ("#", true),
            ("[", true),
            ("]", true),
            ("~", true),
            // Infobip-looking mistakes are scope tokens too: they match no Infobip scope.
            ("sms::manage", true),
            ("SMS:MANAGE", true),
            (":", true),
            // Refused: empty, white space, control, non-ASCII, `"`, `\`, and the separator `,`.
            ("", false),
            (" ", false),
            ("sms manage", false),
            (" sms:manage", false),
            ("sms:manage ", false),
            ("sms:manage\n", false),
            ("sms\tmanage", false),
            ("\0", false),
            ("\u{7f}", false),
            ("ünï:code", false),
            ("Mail.Send\u{a0}", false),
            ("\"", false),
            ("\"quoted\"", false),
            ("\\", false),
            ("back\\slash", false),
            (",", false),
            ("a,b", false),
        ];
        for (name, accepted) in table {
            assert_eq!(is_scope_token(name), accepted, "{name:?}");
            let parsed = Scope::new(name);
            assert_eq!(name.parse::<Scope>(), parsed, "{name:?}");
            if accepted {
                assert_eq!(parsed.as_ref().map(Scope::as_str), Ok(name));
                assert_eq!(parsed.map(|s| s.to_string()).as_deref(), Ok(name));
            } else {
                let name = name.to_owned();
                assert_eq!(parsed, Err(ConfigError::InvalidScope { name }));
            }
        }
    }

    #[test]
    fn names_are_compared_exactly_case_included() -> Result<(), ConfigError> {
        // RFC 6749 §3.3: scope strings are case-sensitive. A key declared with `SMS:MANAGE`
        // holds no Infobip scope; a refusal then names both spellings.
        let held: Scopes = "SMS:MANAGE".parse()?;
        assert!(!held.grants_any(&"sms:manage".parse()?));
        assert!(!held.contains(&Scope::new("sms:manage")?));
        assert!(held.contains(&Scope::new("SMS:MANAGE")?));
        let held: Scopes = "Mail.Send".parse()?;
        assert!(!held.grants_any(&"mail.send,MAIL.SEND".parse()?));
        Ok(())
    }

    #[test]
    fn lists_of_other_servers_scopes_read_back_from_what_is_shown() -> Result<(), ConfigError> {
        for (text, shown) in [
            (
                "Messages.Send https://api.example.com/.default",
                "Messages.Send, https://api.example.com/.default",
            ),
            (
                "openid, Mail.Send,https://graph.microsoft.com/.default  offline_access",
                "Mail.Send, https://graph.microsoft.com/.default, offline_access, openid",
            ),
            ("repo read:org api://x/y", "api://x/y, read:org, repo"),
            (
                "sms:manage SMS:MANAGE Sms:Manage",
                "SMS:MANAGE, Sms:Manage, sms:manage",
            ),
        ] {
            let scopes: Scopes = text.parse()?;
            assert_eq!(scopes.to_string(), shown);
            assert_eq!(shown.parse::<Scopes>()?, scopes);
            assert_eq!(
                scopes.len(),
                text.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .count()
            );
        }
        // A name a token answer could grant but no `Scope` can be: the list is refused, naming it.
        assert_eq!(
            "Mail.Send \"quoted\"".parse::<Scopes>(),
            Err(ConfigError::InvalidScope {
                name: "\"quoted\"".to_owned()
            })
        );
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
        fn any_text_is_a_scope_or_a_typed_refusal(
            text in prop_oneof![
                ".{0,24}",
                "[!-~]{1,24}",
                "[A-Za-z0-9:/._-]{1,24}",
                "[\\x00-\\x7f]{0,12}",
            ],
        ) {
            match Scope::new(&text) {
                Ok(scope) => {
                    prop_assert!(is_scope_token(&text), "{:?}", text);
                    prop_assert_eq!(scope.as_str(), text.as_str());
                    prop_assert_eq!(scope.to_string(), text.clone());
                    // A scope is a list of one.
                    let alone: Scopes = text.parse()?;
                    prop_assert_eq!(alone.iter().collect::<Vec<_>>(), vec![&scope]);
                }
                Err(ConfigError::InvalidScope { name }) => {
                    prop_assert!(!is_scope_token(&text), "{:?}", text);
                    prop_assert_eq!(name, text);
                }
                Err(other) => prop_assert!(false, "{:?}", other),
            }
        }

        #[test]
        fn lists_of_scope_tokens_read_back_from_what_is_shown(
            names in proptest::collection::vec("[!#-+\\--\\[\\]-~]{1,16}", 1..6),
            separators in proptest::collection::vec(prop_oneof![Just(","), Just(" "), Just(", "), Just("\t")], 5),
        ) {
            let mut text = String::new();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    text.push_str(separators[i % separators.len()]);
                }
                text.push_str(name);
            }
            let scopes: Scopes = text.parse()?;
            let expected: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(scopes.iter().map(Scope::as_str).collect::<BTreeSet<_>>(), expected);
            prop_assert_eq!(scopes.to_string().parse::<Scopes>()?, scopes);
        }

        #[test]
        fn any_scope_list_parses_or_names_the_refused_scope(
            text in prop_oneof![
                ".{0,40}",
                "[a-z:, \t\n_.-]{0,40}",
                "[a-zA-Z0-9:,é ]{0,40}",
                "[ -~\t]{0,40}",
            ],
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
