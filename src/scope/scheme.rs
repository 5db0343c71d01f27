//! `AuthScheme`: the four ways Infobip accepts a credential.

/// How a request is authenticated, as Infobip's OpenAPI `securitySchemes` list them.
///
/// Some endpoints accept only some schemes (the API-key management endpoints refuse API keys),
/// which is why the [`Catalog`](super::Catalog) records them per operation.
///
/// ```
/// use infobip_auth::AuthScheme;
/// let scheme = AuthScheme::from_header_scheme("App");
/// assert_eq!(scheme, Some(AuthScheme::ApiKey));
/// assert_eq!(AuthScheme::ApiKey.openapi_name(), "APIKeyHeader");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthScheme {
    /// An API key: `Authorization: App <key>` (OpenAPI `APIKeyHeader`).
    ApiKey,
    /// A username and password: `Authorization: Basic <base64>` (OpenAPI `Basic`).
    Basic,
    /// A session token: `Authorization: IBSSO <token>` (OpenAPI `IBSSOTokenHeader`).
    Ibsso,
    /// An OAuth 2.0 access token: `Authorization: Bearer <token>` (OpenAPI `OAuth2`).
    OAuth2,
}

impl AuthScheme {
    /// Every scheme, in the order the variants are declared.
    ///
    /// ```
    /// use infobip_auth::AuthScheme;
    /// // Every `Authorization` scheme word the crate recognises.
    /// let words: Vec<&str> = AuthScheme::ALL.iter().map(|scheme| scheme.header_scheme()).collect();
    /// assert_eq!(words, ["App", "Basic", "IBSSO", "Bearer"]);
    /// ```
    pub const ALL: [AuthScheme; 4] = [Self::ApiKey, Self::Basic, Self::Ibsso, Self::OAuth2];

    /// The scheme of an `Authorization` header's first word (`App`, `Basic`, `IBSSO`,
    /// `Bearer`), compared without regard to case.
    ///
    /// ```
    /// use infobip_auth::AuthScheme;
    /// assert_eq!(AuthScheme::from_header_scheme("bearer"), Some(AuthScheme::OAuth2));
    /// assert_eq!(AuthScheme::from_header_scheme("Digest"), None);
    /// ```
    #[must_use]
    pub fn from_header_scheme(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.header_scheme().eq_ignore_ascii_case(s))
    }

    /// The scheme of a whole `Authorization` header value, e.g. `App 4f2a…`; `None` when its
    /// first word is no Infobip scheme.
    ///
    /// ```
    /// use infobip_auth::AuthScheme;
    /// assert_eq!(AuthScheme::from_authorization("IBSSO 2f9b…"), Some(AuthScheme::Ibsso));
    /// assert_eq!(AuthScheme::from_authorization(""), None);
    /// ```
    #[must_use]
    pub fn from_authorization(value: &str) -> Option<Self> {
        let word = value.trim_start().split(' ').next().unwrap_or_default();
        Self::from_header_scheme(word)
    }

    /// [`from_authorization`](Self::from_authorization) of a request's header, if it has one.
    pub(crate) fn of_header(value: Option<&http::HeaderValue>) -> Option<Self> {
        Self::from_authorization(value?.to_str().ok()?)
    }

    /// The word that starts the `Authorization` header: `App`, `Basic`, `IBSSO` or `Bearer`.
    ///
    /// ```
    /// # use infobip_auth::AuthScheme;
    /// assert_eq!(AuthScheme::Ibsso.header_scheme(), "IBSSO");
    /// ```
    #[must_use]
    pub fn header_scheme(self) -> &'static str {
        match self {
            Self::ApiKey => "App",
            Self::Basic => "Basic",
            Self::Ibsso => "IBSSO",
            Self::OAuth2 => "Bearer",
        }
    }

    /// The name of the scheme in Infobip's OpenAPI specification: `APIKeyHeader`, `Basic`,
    /// `IBSSOTokenHeader` or `OAuth2`.
    ///
    /// ```
    /// # use infobip_auth::AuthScheme;
    /// assert_eq!(AuthScheme::Ibsso.openapi_name(), "IBSSOTokenHeader");
    /// ```
    #[must_use]
    pub fn openapi_name(self) -> &'static str {
        match self {
            Self::ApiKey => "APIKeyHeader",
            Self::Basic => "Basic",
            Self::Ibsso => "IBSSOTokenHeader",
            Self::OAuth2 => "OAuth2",
        }
    }

    /// The scheme an OpenAPI `securitySchemes` name stands for (exact spelling).
    ///
    /// ```
    /// # use infobip_auth::AuthScheme;
    /// assert_eq!(AuthScheme::from_openapi_name("OAuth2"), Some(AuthScheme::OAuth2));
    /// ```
    #[must_use]
    pub fn from_openapi_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.openapi_name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scheme in AuthScheme::ALL {
            assert_eq!(
                AuthScheme::from_header_scheme(scheme.header_scheme()),
                Some(scheme)
            );
            assert_eq!(
                AuthScheme::from_header_scheme(&scheme.header_scheme().to_uppercase()),
                Some(scheme)
            );
            assert_eq!(
                AuthScheme::from_openapi_name(scheme.openapi_name()),
                Some(scheme)
            );
        }
    }

    #[test]
    fn header_words() {
        let cases = [
            ("App abc", Some(AuthScheme::ApiKey)),
            ("app abc", Some(AuthScheme::ApiKey)),
            ("Basic dXNlcjpwdw==", Some(AuthScheme::Basic)),
            ("IBSSO t", Some(AuthScheme::Ibsso)),
            ("Bearer t", Some(AuthScheme::OAuth2)),
            ("Token t", None),
            ("Application t", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(AuthScheme::from_authorization(value), expected, "{value:?}");
        }
    }
}
