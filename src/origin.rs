//! Where credentials may go: [`BaseUrl`] and the layer's allow-list.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};

use crate::error::ConfigError;

/// An Infobip base URL such as `https://xyz12.api.infobip.com`: HTTPS, or plain HTTP on a
/// loopback host (the embedded test server). Token endpoints are built under it, and the layer
/// sends credentials to its origin only.
///
/// ```
/// use infobip_auth::BaseUrl;
/// let base: BaseUrl = "https://xyz12.api.infobip.com/".parse()?;
/// assert_eq!(base.endpoint("/auth/1/session").to_string(), "https://xyz12.api.infobip.com/auth/1/session");
/// assert!("http://xyz12.api.infobip.com".parse::<BaseUrl>().is_err()); // clear text
/// assert!("http://127.0.0.1:8080".parse::<BaseUrl>().is_ok());         // loopback
/// # Ok::<(), infobip_auth::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    scheme: Scheme,
    authority: Authority,
    /// Without a trailing slash; empty for a bare origin (a gateway may add a prefix).
    prefix: String,
    /// The port requests go to: the authority's, or the scheme's default.
    port: u16,
}

impl BaseUrl {
    /// Parses a base URL. A path is kept as a prefix of every endpoint; a query is refused.
    /// Write the scheme: a host alone (`xyz12.api.infobip.com`) is refused.
    ///
    /// # Errors
    /// [`ConfigError::InvalidUrl`] for anything but an absolute `http`/`https` URL with a host;
    /// [`ConfigError::InsecureUrl`] for plain HTTP to a host that is not loopback.
    ///
    /// ```
    /// # use infobip_auth::BaseUrl;
    /// let no_scheme = BaseUrl::new("xyz12.api.infobip.com").err().map(|e| e.to_string());
    /// assert_eq!(
    ///     no_scheme.as_deref(),
    ///     Some(r#"invalid URL "xyz12.api.infobip.com": no scheme: write https:// before the host"#)
    /// );
    /// assert!(BaseUrl::new("https://xyz12.api.infobip.com").is_ok());
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidUrl {
            url: redacted(url),
            reason,
        };
        let uri = match url.parse::<Uri>() {
            Ok(uri) if uri.scheme().is_some() => uri,
            _ if host_without_scheme(url).is_some() => {
                return Err(invalid("no scheme: write https:// before the host"));
            }
            Ok(_) => return Err(invalid("no scheme")),
            Err(_) => return Err(invalid("not a URL")),
        };
        let parts = uri.into_parts();
        let scheme = parts.scheme.ok_or_else(|| invalid("no scheme"))?;
        let authority = parts.authority.ok_or_else(|| invalid("no host"))?;
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(invalid("no host, or user information in the URL"));
        }
        let port = port_or_default(&scheme, &authority)
            .ok_or_else(|| invalid("the port is not a number from 0 to 65535"))?;
        if parts
            .path_and_query
            .as_ref()
            .and_then(PathAndQuery::query)
            .is_some()
        {
            return Err(invalid("a base URL has no query"));
        }
        if scheme == Scheme::HTTP {
            if !is_loopback(authority.host()) {
                return Err(ConfigError::InsecureUrl {
                    origin: format!("{scheme}://{authority}"),
                });
            }
        } else if scheme != Scheme::HTTPS {
            return Err(invalid("the scheme is neither https nor http"));
        }
        let prefix = parts
            .path_and_query
            .map(|p| p.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Ok(Self {
            scheme,
            authority,
            prefix,
            port,
        })
    }

    /// The URL of `path` (which starts with `/`) under this base.
    ///
    /// ```
    /// # use infobip_auth::BaseUrl;
    /// let base = BaseUrl::new("https://gateway.example.com/infobip")?;
    /// assert_eq!(base.endpoint("/auth/1/oauth2/token").path(), "/infobip/auth/1/oauth2/token");
    /// # Ok::<(), infobip_auth::ConfigError>(())
    /// ```
    #[must_use]
    pub fn endpoint(&self, path: &str) -> Uri {
        let path = format!("{}/{}", self.prefix, path.trim_start_matches('/'));
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            // Scheme and authority were parsed already; only an odd `path` can fail here.
            .unwrap_or_else(|_| self.origin_uri())
    }

    fn origin_uri(&self) -> Uri {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_default()
    }

    /// Whether `uri` goes to this base URL's origin: the same scheme, host (in any case) and
    /// port, a missing port being the scheme's default (443 for HTTPS, 80 for HTTP), as a client
    /// connects. A URI with user information never matches: it may hold a password.
    ///
    /// ```
    /// # use infobip_auth::BaseUrl;
    /// let base = BaseUrl::new("https://xyz.api.infobip.com")?;
    /// assert!(base.same_origin(&"https://xyz.api.infobip.com/sms/2/text/advanced".parse()?));
    /// assert!(base.same_origin(&"https://XYZ.api.infobip.com:443/sms".parse()?)); // default port
    /// assert!(!base.same_origin(&"https://xyz.api.infobip.com:8443/sms".parse()?));
    /// assert!(!base.same_origin(&"https://evil.example/sms".parse()?));
    /// # Ok::<(), infobip_auth::BoxError>(())
    /// ```
    #[must_use]
    pub fn same_origin(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return false;
        };
        *scheme == self.scheme
            && !authority.as_str().contains('@')
            && authority.host().eq_ignore_ascii_case(self.authority.host())
            && port_or_default(scheme, authority) == Some(self.port)
    }
}

impl FromStr for BaseUrl {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.prefix)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

/// `url` as it may be shown: scheme, host, port and path, never user information or a query
/// (either may hold a secret). A host given without its scheme is shown without one.
pub(crate) fn redacted(url: &str) -> String {
    let parsed = url.parse::<Uri>();
    if let Ok(uri) = &parsed
        && let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority())
    {
        return format!("{scheme}://{}{}", host_port(authority), uri.path());
    }
    if let Some(uri) = host_without_scheme(url)
        && let Some(authority) = uri.authority()
    {
        // The path `https://` gave a bare host is not shown as the user's.
        let path = if url.contains('/') { uri.path() } else { "" };
        return format!("{}{path}", host_port(authority));
    }
    match parsed {
        Ok(uri) => uri.path().to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// `url` read as if `https://` were written before it, when it names a host but no scheme
/// (`xyz12.api.infobip.com`, `xyz12.api.infobip.com/infobip`).
fn host_without_scheme(url: &str) -> Option<Uri> {
    if url.contains("://") {
        return None;
    }
    let uri: Uri = format!("https://{url}").parse().ok()?;
    uri.authority()
        .is_some_and(|authority| !authority.host().is_empty())
        .then_some(uri)
}

/// The origin of a request whose URI names neither scheme nor host.
pub(crate) const NO_HOST: &str = "(no host)";

/// What a refused request names as its origin, for an error message: no user information,
/// path or query.
pub(crate) fn origin_of(uri: &Uri) -> String {
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{}", host_port(authority)),
        (None, Some(authority)) => format!("{} (no scheme)", host_port(authority)),
        (Some(scheme), None) => format!("{scheme}: (no host)"),
        (None, None) => NO_HOST.to_owned(),
    }
}

/// Whether `uri` names neither a scheme nor a host: a path, as a tonic `Channel` (which adds
/// its own origin) is given it. A path that starts with two slashes (`//evil.example/x`; a
/// backslash counts as one, as URL parsers read it) names a host to anything that resolves it
/// as a reference, so it is not one.
#[inline(always)]
pub(crate) fn is_relative(uri: &Uri) -> bool {
    let names_a_host = |path: &str| {
        path.as_bytes()
            .get(..2)
            .is_some_and(|start| start.iter().all(|&b| b == b'/' || b == b'\\'))
    };
    uri.scheme().is_none() && uri.authority().is_none() && !names_a_host(uri.path())
}

fn host_port(authority: &Authority) -> String {
    match authority.port_u16() {
        Some(port) => format!("{}:{port}", authority.host()),
        None => authority.host().to_owned(),
    }
}

/// The port a request to `authority` goes to: the one it names, or `scheme`'s default when it
/// names none (or an empty one, `host:`). `None` for a port that is not a plain number from 0
/// to 65535 (`:99999`, `:+443`, `:abc`, which `http` parses): clients disagree on where those
/// go, so they match no origin.
fn port_or_default(scheme: &Scheme, authority: &Authority) -> Option<u16> {
    // `host()` is the start of what follows any user information.
    let host_port = authority.as_str().rsplit('@').next()?;
    match host_port.strip_prefix(authority.host())? {
        "" | ":" if *scheme == Scheme::HTTPS => Some(443),
        "" | ":" if *scheme == Scheme::HTTP => Some(80),
        "" | ":" => None,
        port => port
            .strip_prefix(':')
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok(),
    }
}

/// Whether `host` (a name or an IP literal, brackets allowed) is this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The hosts a layer sends credentials to.
#[derive(Clone, Debug)]
pub(crate) enum AllowedHosts {
    /// HTTPS to `infobip.com` and its subdomains (in any case), on the default port.
    Infobip,
    /// These origins only (see [`BaseUrl::same_origin`]).
    Listed(Arc<[BaseUrl]>),
}

impl AllowedHosts {
    /// Whether a request for `uri` may carry the credential. A URI without a scheme or a host
    /// never may: where it goes is not known here (the layer decides for relative URIs).
    pub(crate) fn allows(&self, uri: &Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        match self {
            Self::Infobip => {
                let host = authority.host();
                let under_infobip = host.eq_ignore_ascii_case("infobip.com")
                    || host.len() > ".infobip.com".len()
                        && host
                            .get(host.len() - ".infobip.com".len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(".infobip.com"));
                uri.scheme() == Some(&Scheme::HTTPS)
                    && under_infobip
                    && port_or_default(&Scheme::HTTPS, authority) == Some(443)
            }
            Self::Listed(bases) => bases.iter().any(|base| base.same_origin(uri)),
        }
    }

    /// [`allows`](Self::allows) remembering, in `last`, the origin it last allowed: a request
    /// to exactly the same scheme and authority (byte for byte) is allowed without parsing the
    /// host again. The answer depends on the scheme and the authority only, so an exact repeat
    /// has the same answer; anything else takes the full check.
    #[inline(always)]
    pub(crate) fn allows_repeat(&self, uri: &Uri, last: &mut LastAllowed) -> bool {
        let Some(seen) = LastAllowed::of(uri) else {
            return self.allows(uri);
        };
        if seen == *last {
            return true;
        }
        let allowed = self.allows(uri);
        // User information is never remembered: it may hold a password.
        if allowed && !uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            *last = seen;
        }
        allowed
    }

    /// Whether a request to `base`'s origin may carry the credential.
    pub(crate) fn allows_origin(&self, base: &BaseUrl) -> bool {
        self.allows(&base.origin_uri())
    }

    /// Adds an origin, ending the default "any Infobip host".
    pub(crate) fn with(self, base: BaseUrl) -> Self {
        match self {
            Self::Infobip => Self::Listed(Arc::from([base])),
            Self::Listed(bases) => {
                let mut bases = bases.to_vec();
                bases.push(base);
                Self::Listed(bases.into())
            }
        }
    }
}

/// The origin a service clone last let a credential go to, kept inline (no allocation) as
/// its scheme, its authority's length and the authority's first and last 16 (or 8) bytes,
/// which overlap or meet: a repeat is recognised by a few word compares, with no call to
/// `memcmp`. Authorities shorter than 8 or longer than 32 bytes are checked in full each time.
#[derive(Clone, Copy, Default, Eq)]
pub(crate) struct LastAllowed {
    /// `len << 1 | https`; zero when nothing is remembered (no remembered length is zero).
    key: usize,
    head: u128,
    tail: u128,
}

impl LastAllowed {
    /// What would be remembered of `uri`, if it can be.
    #[inline(always)]
    fn of(uri: &Uri) -> Option<Self> {
        // `http` spells only its standard schemes exactly so ("HTTPS" parsed by `Scheme` is
        // another scheme), and only those are ever allowed.
        let https = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None, // never allowed; nothing to remember
        };
        let bytes = uri.authority()?.as_str().as_bytes();
        let key = bytes.len() << 1 | usize::from(https);
        // Infobip's hosts (`xyz12.api.infobip.com`) are tried first.
        let (head, tail) = match bytes.len() {
            17..=32 => (
                u128::from_ne_bytes(*bytes.first_chunk()?),
                u128::from_ne_bytes(*bytes.last_chunk()?),
            ),
            8..=16 => (
                u64::from_ne_bytes(*bytes.first_chunk()?).into(),
                u64::from_ne_bytes(*bytes.last_chunk()?).into(),
            ),
            _ => return None,
        };
        Some(Self { key, head, tail })
    }
}

impl PartialEq for LastAllowed {
    /// One branch: the words are compared together, not one after another.
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        let key = (self.key ^ other.key) as u128;
        (key | (self.head ^ other.head) | (self.tail ^ other.tail)) == 0
    }
}

impl fmt::Debug for LastAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Lengths only: the bytes are a host name, but say no more than needed.
        f.debug_struct("LastAllowed")
            .field("https", &(self.key & 1 == 1))
            .field("len", &(self.key >> 1))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn default_allows_only_https_infobip_hosts() {
        let hosts = AllowedHosts::Infobip;
        for ok in [
            "https://xyz12.api.infobip.com/sms/2/text/advanced",
            "https://API.INFOBIP.COM/x",
            "https://XYZ.API.INFOBIP.COM:443/x",
            "https://oneapi.infobip.com:443/exchange/1/oauth/token",
        ] {
            assert!(hosts.allows(&uri(ok)), "{ok}");
        }
        for refused in [
            "http://xyz12.api.infobip.com/sms",
            "https://infobip.com.evil.example/",
            "https://evilinfobip.com/",
            "https://xyz.api.infobip.com:8443/",
            "https://xyz.api.infobip.com:80/",
            "https://example.com/",
            // No scheme or no host: where it goes is the layer's to decide, not the list's.
            "/relative/path/for/a/bound/channel",
            "*",
            "api.infobip.com:443",
        ] {
            assert!(!hosts.allows(&uri(refused)), "{refused}");
        }
    }

    /// Two spellings of each origin, both ways: the base as given, the request as sent.
    #[test]
    fn a_default_port_given_or_not_is_the_same_origin() -> Result<(), ConfigError> {
        for (a, b) in [
            ("https://x.api.infobip.com", "https://x.api.infobip.com:443"),
            ("https://x.api.infobip.com", "https://X.API.INFOBIP.COM:443"),
            ("https://X.Api.Infobip.com:443", "https://x.api.infobip.com"),
            ("https://x.api.infobip.com", "https://x.api.infobip.com:"),
            ("http://127.0.0.1", "http://127.0.0.1:80"),
            ("http://localhost", "http://LOCALHOST:80"),
            ("http://[::1]", "http://[::1]:80"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:08080"),
        ] {
            for (base, request) in [(a, b), (b, a)] {
                let request = uri(&format!("{request}/sms/2/text/advanced"));
                assert!(
                    BaseUrl::new(base)?.same_origin(&request),
                    "{base} {request}"
                );
                let hosts = AllowedHosts::Infobip.with(BaseUrl::new(base)?);
                assert!(hosts.allows(&request), "{base} {request}");
            }
        }
        Ok(())
    }

    #[test]
    fn another_port_scheme_or_user_information_is_another_origin() -> Result<(), ConfigError> {
        for (base, request) in [
            (
                "https://x.api.infobip.com",
                "https://x.api.infobip.com:8443",
            ),
            ("https://x.api.infobip.com", "https://x.api.infobip.com:80"),
            ("https://x.api.infobip.com:80", "https://x.api.infobip.com"),
            (
                "https://x.api.infobip.com:80",
                "https://x.api.infobip.com:443",
            ),
            (
                "https://x.api.infobip.com:443",
                "http://x.api.infobip.com:443",
            ),
            ("http://127.0.0.1", "http://127.0.0.1:443"),
            ("http://127.0.0.1", "https://127.0.0.1"),
            ("http://127.0.0.1:443", "https://127.0.0.1"),
            ("http://127.0.0.1", "http://127.0.0.2"),
            (
                "https://x.api.infobip.com",
                "https://user@x.api.infobip.com",
            ),
            (
                "https://x.api.infobip.com:443",
                "https://user:pw@x.api.infobip.com",
            ),
            (
                "https://x.api.infobip.com",
                "https://x.api.infobip.com@evil.example",
            ),
            (
                "https://x.api.infobip.com",
                "https://x.api.infobip.com:99999",
            ),
            (
                "https://x.api.infobip.com",
                "https://x.api.infobip.com:65979",
            ),
            (
                "https://x.api.infobip.com",
                "https://x.api.infobip.com:+443",
            ),
            ("https://x.api.infobip.com", "https://x.api.infobip.com:abc"),
        ] {
            let request = uri(&format!("{request}/sms"));
            assert!(
                !BaseUrl::new(base)?.same_origin(&request),
                "{base} {request}"
            );
            let hosts = AllowedHosts::Infobip.with(BaseUrl::new(base)?);
            assert!(!hosts.allows(&request), "{base} {request}");
        }
        // Ports a client may read as the default one go nowhere, even to Infobip.
        for odd in [
            "https://api.infobip.com:65979/",
            "https://api.infobip.com:+443/",
        ] {
            assert!(!AllowedHosts::Infobip.allows(&uri(odd)), "{odd}");
        }
        assert!(BaseUrl::new("https://x.api.infobip.com:99999").is_err());
        Ok(())
    }

    #[test]
    fn listed_origins_match_scheme_host_and_port() -> Result<(), ConfigError> {
        let hosts = AllowedHosts::Infobip.with(BaseUrl::new("http://127.0.0.1:8080")?);
        assert!(hosts.allows(&uri("http://127.0.0.1:8080/sms/2/text/advanced")));
        assert!(!hosts.allows(&uri("http://127.0.0.1:9090/sms/2/text/advanced")));
        assert!(!hosts.allows(&uri("https://xyz.api.infobip.com/")));
        Ok(())
    }

    #[test]
    fn remembering_the_last_origin_changes_no_answer() -> Result<(), ConfigError> {
        let long = format!("https://{}.api.infobip.com/", "a".repeat(70));
        let uris = [
            "https://xyz12.api.infobip.com/sms/2/text/advanced",
            "https://xyz12.api.infobip.com/sms/2/text/advanced",
            "http://xyz12.api.infobip.com/sms/2/text/advanced",
            "https://XYZ12.API.INFOBIP.COM/x",
            "https://xyz12.api.infobip.com:8443/x",
            "https://xyz12.api.infobip.com:443/x",
            "https://xyz12.api.infobip.com:+443/x",
            "https://user@xyz12.api.infobip.com/x",
            "https://xyz12.api.infobip.com.evil.example/x",
            "ftp://xyz12.api.infobip.com/x",
            "/relative",
            long.as_str(),
            long.as_str(),
            "http://127.0.0.1:8080/x",
            "http://127.0.0.1:8080/x",
            "http://127.0.0.1:08080/x",
            "http://user@127.0.0.1:8080/x",
            "https://127.0.0.1:8080/x",
            "http://127.0.0.1:9090/x",
            "https://xyz12.api.infobip.com/sms/2/text/advanced",
        ];
        let listed = AllowedHosts::Infobip.with(BaseUrl::new("http://127.0.0.1:8080")?);
        for hosts in [AllowedHosts::Infobip, listed] {
            let mut last = LastAllowed::default();
            // Every order of neighbours: each URI after each other one.
            for a in uris {
                for b in uris {
                    for u in [a, b] {
                        let u = uri(u);
                        assert_eq!(
                            hosts.allows_repeat(&u, &mut last),
                            hosts.allows(&u),
                            "{u} after {last:?} with {hosts:?}"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_remembered_authority_differs_from_any_other_in_any_byte() {
        let seen = |authority: &[u8]| {
            let uri = format!("https://{}/x", String::from_utf8_lossy(authority));
            LastAllowed::of(&uri.parse().unwrap_or_default())
        };
        for len in 1..=40 {
            let remembered = vec![b'a'; len];
            let last = seen(&remembered);
            assert_eq!(last.is_some(), (8..=32).contains(&len), "{len}: kept");
            if last.is_none() {
                continue;
            }
            assert_eq!(seen(&remembered), last, "{len}");
            assert_ne!(seen(&remembered[1..]), last, "{len}: shorter");
            for at in 0..len {
                let mut other = remembered.clone();
                other[at] = b'b';
                assert_ne!(seen(&other), last, "{len}: byte {at}");
            }
        }
        let http = "http://aaaaaaaaaa/x".parse().unwrap_or_default();
        let https = "https://aaaaaaaaaa/x".parse().unwrap_or_default();
        assert_ne!(
            LastAllowed::of(&http),
            LastAllowed::of(&https),
            "the scheme"
        );
    }

    #[test]
    fn errors_never_repeat_user_information_or_queries() {
        for url in [
            "https://user:hunter2@api.infobip.com",
            "https://api.infobip.com/?apikey=hunter2",
            "http://bob:hunter2@example.com/x?token=hunter2",
        ] {
            let shown = BaseUrl::new(url)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!shown.is_empty() && !shown.contains("hunter2"), "{shown}");
        }
        let uri = uri("https://bob:hunter2@evil.example:8443/x?k=hunter2");
        assert_eq!(origin_of(&uri), "https://evil.example:8443");
        // An allowed request with user information is not remembered, so not shown either.
        let mut last = LastAllowed::default();
        // Short enough to be remembered, were it not for the password.
        let with_password = self::uri("https://bob:hunter2@api.infobip.com/x");
        assert!(AllowedHosts::Infobip.allows_repeat(&with_password, &mut last));
        assert_eq!(last, LastAllowed::default(), "nothing remembered");
    }

    #[test]
    fn a_host_without_its_scheme_is_shown_and_told_to_write_https() {
        for (url, shown) in [
            ("xyz12.api.infobip.com", "xyz12.api.infobip.com"),
            (
                "xyz12.api.infobip.com/infobip",
                "xyz12.api.infobip.com/infobip",
            ),
            (
                "xyz12.api.infobip.com:8443/x?k=hunter2",
                "xyz12.api.infobip.com:8443/x",
            ),
            (
                "bob:hunter2@xyz12.api.infobip.com/x",
                "xyz12.api.infobip.com/x",
            ),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
            let err = BaseUrl::new(url).err().map(|e| e.to_string());
            assert_eq!(
                err,
                Some(format!(
                    "invalid URL \"{shown}\": no scheme: write https:// before the host"
                )),
                "{url}"
            );
        }
        assert_eq!(
            redacted("https://bob:pw@h.example/x?q=1"),
            "https://h.example/x"
        );
        assert_eq!(redacted("/only/a/path?q=1"), "/only/a/path");
        assert_eq!(redacted("not a url"), "(not a URL)");
    }

    #[test]
    fn a_refused_uri_without_a_scheme_or_host_says_so() {
        assert_eq!(
            origin_of(&uri("api.infobip.com:443")),
            "api.infobip.com:443 (no scheme)"
        );
        let relative = origin_of(&uri("/grpc.health.v1.Health/Check"));
        assert_eq!(relative, NO_HOST);
        assert!(is_relative(&uri("/grpc.health.v1.Health/Check")));
        assert!(!is_relative(&uri("api.infobip.com:443")));
        assert!(!is_relative(&uri("https://api.infobip.com/")));
    }

    #[test]
    fn refuses_clear_text_and_odd_urls() {
        for bad in [
            "http://api.infobip.com",
            "ftp://api.infobip.com",
            "https://",
            "https://user:pw@api.infobip.com",
            "https://api.infobip.com/?q=1",
            "not a url",
        ] {
            assert!(BaseUrl::new(bad).is_err(), "{bad}");
        }
        for good in ["http://localhost:1", "http://[::1]:2", "http://127.0.0.2"] {
            assert!(BaseUrl::new(good).is_ok(), "{good}");
        }
    }

    /// A URI as a request may carry it: odd schemes, cases, ports, user information, IP
    /// literals and hosts that end like Infobip's.
    fn any_uri() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            Just("https://"),
            Just("http://"),
            Just("HTTPS://"),
            Just("ftp://"),
            Just(""),
        ];
        let user = prop_oneof![Just(""), Just("user@"), Just("u:p@"), Just("@")];
        let host = prop_oneof![
            Just("xyz12.api.infobip.com".to_owned()),
            Just("XYZ12.API.INFOBIP.COM".to_owned()),
            Just("infobip.com".to_owned()),
            Just("127.0.0.1".to_owned()),
            Just("[::1]".to_owned()),
            Just("localhost".to_owned()),
            "[a-zA-Z0-9.-]{0,40}",
            "[a-z]{0,10}\\.?infobip\\.com\\.?[a-z]{0,5}",
        ];
        let port = prop_oneof![
            Just(String::new()),
            Just(":".to_owned()),
            Just(":443".to_owned()),
            Just(":8080".to_owned()),
            ":[+0-9a-z]{0,7}",
        ];
        let path = prop_oneof![Just("/"), Just("/sms/2/text/advanced?x=1"), Just("")];
        prop_oneof![
            (scheme, user, host, port, path)
                .prop_map(|(s, u, h, p, path)| format!("{s}{u}{h}{p}{path}")),
            ".{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn remembering_the_last_origin_agrees_with_the_full_check(
            uris in proptest::collection::vec(any_uri(), 1..12),
        ) {
            let uris: Vec<Uri> = uris.iter().filter_map(|u| u.parse().ok()).collect();
            let listed = AllowedHosts::Infobip
                .with(BaseUrl::new("http://127.0.0.1:8080").map_err(|e| TestCaseError::fail(e.to_string()))?)
                .with(BaseUrl::new("https://xyz12.api.infobip.com").map_err(|e| TestCaseError::fail(e.to_string()))?);
            for hosts in [AllowedHosts::Infobip, listed] {
                let mut last = LastAllowed::default();
                for uri in uris.iter().chain(uris.iter().rev()) {
                    prop_assert_eq!(hosts.allows_repeat(uri, &mut last), hosts.allows(uri), "{}", uri);
                }
            }
        }

        #[test]
        fn any_base_url_is_taken_or_refused_without_user_information_or_query(
            url in prop_oneof![
                any_uri(),
                any_uri().prop_map(|u| format!("{u}?password=hunter2secret")),
                any_uri().prop_map(|u| u.replacen("://", "://admin:hunter2secret@", 1)),
                any_uri().prop_map(|u| format!("admin:hunter2secret@{}", u.trim_start_matches("https://"))),
            ],
            path in ".{0,20}",
        ) {
            match BaseUrl::new(&url) {
                Ok(base) => {
                    let shown = format!("{base} {base:?}");
                    prop_assert!(!shown.contains("hunter2secret"), "{}", shown);
                    let endpoint = base.endpoint(&path);
                    prop_assert!(base.same_origin(&endpoint), "{} from {}", endpoint, base);
                }
                Err(err) => {
                    prop_assert!(matches!(
                        err,
                        ConfigError::InvalidUrl { .. } | ConfigError::InsecureUrl { .. }
                    ), "{:?}", err);
                    let shown = format!("{err} {err:?}");
                    prop_assert!(!shown.contains("hunter2secret"), "{}", shown);
                }
            }
        }
    }
}
