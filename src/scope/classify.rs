//! What a `401` or `403` means for a request, and whether a request is sure to be refused
//! before it is sent. Pure functions over a [`Catalog`]; the scope-check layer calls them.

use http::{Method, StatusCode};

use super::catalog::path_only;
use super::{AuthScheme, Catalog, Scopes};
use crate::error::{ApiError, Error, ErrorKind, Forbidden};

/// Classifies Infobip's answer to `method path` by its status alone, reading whichever error
/// body shape came:
///
/// * `401` → [`ErrorKind::InvalidCredentials`]: the credential is wrong, revoked or expired.
/// * `403` → [`ErrorKind::Forbidden`], whatever the body says (`FORBIDDEN`, `UNAUTHORIZED`,
///   `E403`, a CAMARA code, nothing, or something unreadable, whose first bytes are kept in
///   [`ApiError::raw`]). It names the endpoint's template and the scopes that would grant it
///   when the catalogue knows the endpoint (the request path and no scopes otherwise), and the
///   credential's scopes when `held` is given.
/// * anything else → `None`: it is no authentication or authorization matter (`429` and `5xx`
///   included).
///
/// ```
/// use http::{Method, StatusCode};
/// use infobip_auth::scope::{classify, Catalog};
/// use infobip_auth::ErrorKind;
/// let body = br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;
/// let held = "inbound-message:read".parse()?;
/// let err = classify(&Method::POST, "/sms/2/text/advanced", StatusCode::FORBIDDEN, body,
///                    &Catalog::infobip(), Some(&held)).ok_or("not classified")?;
/// assert!(matches!(err.kind(), ErrorKind::Forbidden(_)));
/// assert!(err.to_string().contains("needs any of message:send, sms:manage, sms:message:send"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn classify(
    method: &Method,
    path: &str,
    status: StatusCode,
    body: &[u8],
    catalog: &Catalog,
    held: Option<&Scopes>,
) -> Option<Error> {
    classify_sent(method, path, status, body, catalog, held, None)
}

/// [`classify`], knowing the scheme of the credential the request carried: a `403` to a
/// scheme the endpoint does not take is explained by the scheme, not by scopes.
pub(crate) fn classify_sent(
    method: &Method,
    path: &str,
    status: StatusCode,
    body: &[u8],
    catalog: &Catalog,
    held: Option<&Scopes>,
    scheme: Option<AuthScheme>,
) -> Option<Error> {
    let kind = match status {
        StatusCode::UNAUTHORIZED => {
            ErrorKind::InvalidCredentials(ApiError::from_body(status, body))
        }
        StatusCode::FORBIDDEN => {
            let mut forbidden = forbidden(method, path, catalog, held);
            if let (Some(scheme), Some(op)) = (scheme, catalog.lookup(method, path_only(path))) {
                forbidden = forbidden.with_scheme(scheme, op.accepted.to_vec());
            }
            ErrorKind::Forbidden(Box::new(
                forbidden.with_api(ApiError::from_body(status, body)),
            ))
        }
        _ => return None,
    };
    Some(Error::new(kind))
}

/// Decides, before sending, whether Infobip is certain to refuse `method path`:
///
/// * [`ErrorKind::SchemeNotAccepted`] when the catalogue knows the endpoint and it does not
///   accept `scheme` (for instance an API key, `App`, sent to the API-key management
///   endpoints); `accepted` lists the endpoint's schemes in the specification's order, and
///   the message names them by their `Authorization` words.
/// * [`ErrorKind::Forbidden`] (with no server answer) when the credential's scopes are known
///   and none of the endpoint's scopes is among them.
///
/// Anything not certain passes: an endpoint the catalogue does not know, an unknown scheme or
/// unknown scopes, an endpoint that lists no scheme or no scope.
///
/// # Errors
/// The refusal, as described above.
///
/// ```
/// use http::Method;
/// use infobip_auth::scope::{preflight, AuthScheme, Catalog};
/// use infobip_auth::ErrorKind;
/// let catalog = Catalog::infobip();
/// let err = preflight(&Method::POST, "/settings/2/api-keys", Some(AuthScheme::ApiKey), None, &catalog)
///     .err().ok_or("not refused")?;
/// let ErrorKind::SchemeNotAccepted { accepted, .. } = err.kind() else { return Err("wrong kind".into()) };
/// assert_eq!(accepted, &[AuthScheme::Ibsso, AuthScheme::Basic, AuthScheme::OAuth2]);
/// assert!(err.to_string().ends_with("(it accepts IBSSO, Basic, Bearer)"));
/// assert!(preflight(&Method::POST, "/sms/2/text/advanced", Some(AuthScheme::ApiKey), None, &catalog).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn preflight(
    method: &Method,
    path: &str,
    scheme: Option<AuthScheme>,
    held: Option<&Scopes>,
    catalog: &Catalog,
) -> Result<(), Error> {
    let Some(op) = catalog.lookup(method, path) else {
        return Ok(());
    };
    if let Some(scheme) = scheme.filter(|&scheme| !op.accepts(scheme)) {
        return Err(Error::new(ErrorKind::SchemeNotAccepted {
            method: method.clone(),
            endpoint: op.template.to_owned(),
            scheme,
            accepted: op.accepted.to_vec(),
        }));
    }
    if held.is_some_and(|held| !op.granted_by(held)) {
        let forbidden = forbidden(method, path, catalog, held);
        return Err(Error::new(ErrorKind::Forbidden(Box::new(forbidden))));
    }
    Ok(())
}

/// The forbidden value for a request, without the server's answer.
fn forbidden(method: &Method, path: &str, catalog: &Catalog, held: Option<&Scopes>) -> Forbidden {
    let path = path_only(path);
    let mut forbidden = match catalog.lookup(method, path) {
        Some(op) if op.required.is_empty() => Forbidden::new(method.clone(), op.template),
        Some(op) => Forbidden::new(method.clone(), op.template).with_required(op.required.clone()),
        None => Forbidden::new(method.clone(), path),
    };
    if let Some(held) = held {
        forbidden = forbidden.with_held(held.clone());
    }
    forbidden
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConfigError;
    use proptest::prelude::*;

    const SEED_403: &[u8] =
        br#"{"requestError":{"serviceException":{"messageId":"FORBIDDEN","text":"Forbidden"}}}"#;

    fn sms_scopes() -> Result<Scopes, ConfigError> {
        "message:send,sms:message:send,sms:manage".parse()
    }

    #[test]
    fn seed_403_names_the_endpoint_scopes_and_what_is_held() -> Result<(), ConfigError> {
        let held: Scopes = "inbound-message:read".parse()?;
        let err = classify(
            &Method::POST,
            "/sms/2/text/advanced",
            StatusCode::FORBIDDEN,
            SEED_403,
            &Catalog::infobip(),
            Some(&held),
        );
        let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
        let forbidden = err.as_ref().and_then(Error::forbidden).cloned();
        let Some(forbidden) = forbidden else {
            panic!("not forbidden: {text}");
        };
        assert_eq!(forbidden.endpoint, "/sms/2/text/advanced");
        assert_eq!(forbidden.required, Some(sms_scopes()?));
        assert_eq!(forbidden.held.as_ref(), Some(&held));
        for scope in &sms_scopes()? {
            assert!(!held.contains(scope));
            assert!(text.contains(scope.as_str()), "{text}");
        }
        let api = forbidden.api.as_ref();
        assert_eq!(api.and_then(ApiError::code), Some("FORBIDDEN"));
        assert_eq!(api.and_then(ApiError::text), Some("Forbidden"));
        assert!(
            text.contains("the credential holds inbound-message:read"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn preflight_refuses_a_key_without_any_of_the_scopes() -> Result<(), ConfigError> {
        let held: Scopes = "inbound-message:read".parse()?;
        let result = preflight(
            &Method::POST,
            "/sms/2/text/advanced",
            Some(AuthScheme::ApiKey),
            Some(&held),
            &Catalog::infobip(),
        );
        let text = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        let forbidden = result.err().as_ref().and_then(Error::forbidden).cloned();
        let Some(forbidden) = forbidden else {
            panic!("not refused");
        };
        assert_eq!(forbidden.required, Some(sms_scopes()?));
        assert_eq!(forbidden.held, Some(held));
        assert_eq!(forbidden.api, None);
        assert_eq!(
            text,
            "forbidden: POST /sms/2/text/advanced needs any of message:send, sms:manage, \
             sms:message:send; the credential holds inbound-message:read"
        );
        Ok(())
    }

    #[test]
    fn preflight_lets_through_what_is_not_certain_to_fail() -> Result<(), ConfigError> {
        let catalog = Catalog::infobip();
        let sms: Scopes = "sms:manage".parse()?;
        let none = Scopes::new();
        let two_fa: Scopes = "2fa:manage".parse()?;
        let cases: [(Method, &str, Option<AuthScheme>, Option<&Scopes>); 8] = [
            // Holds one of the three.
            (
                Method::POST,
                "/sms/2/text/advanced",
                Some(AuthScheme::ApiKey),
                Some(&sms),
            ),
            // Scopes unknown.
            (
                Method::POST,
                "/sms/2/text/advanced",
                Some(AuthScheme::ApiKey),
                None,
            ),
            // Scheme unknown.
            (Method::POST, "/settings/2/api-keys", None, None),
            (
                Method::POST,
                "/settings/2/api-keys",
                Some(AuthScheme::Ibsso),
                None,
            ),
            // Unknown endpoint, even with no scope at all.
            (
                Method::GET,
                "/not/in/the/catalogue",
                Some(AuthScheme::ApiKey),
                Some(&none),
            ),
            // Public endpoint: no scheme, no scope listed.
            (
                Method::POST,
                "/auth/1/session",
                Some(AuthScheme::ApiKey),
                Some(&none),
            ),
            // Lists schemes but no scope.
            (
                Method::GET,
                "/vocalize/2/campaigns/me",
                Some(AuthScheme::ApiKey),
                Some(&none),
            ),
            // Parameters and a query.
            (
                Method::GET,
                "/2fa/2/applications/abc?x=1",
                Some(AuthScheme::OAuth2),
                Some(&two_fa),
            ),
        ];
        for (method, path, scheme, held) in cases {
            let result = preflight(&method, path, scheme, held, &catalog);
            assert!(result.is_ok(), "{method} {path}: {result:?}");
        }
        Ok(())
    }

    #[test]
    fn preflight_refuses_an_api_key_on_api_key_management() {
        let catalog = Catalog::infobip();
        let result = preflight(
            &Method::POST,
            "/settings/2/api-keys",
            Some(AuthScheme::ApiKey),
            None,
            &catalog,
        );
        let err = result.err();
        let kind = err.as_ref().map(Error::kind);
        let Some(ErrorKind::SchemeNotAccepted {
            method,
            endpoint,
            scheme,
            accepted,
        }) = kind
        else {
            panic!("not refused: {err:?}");
        };
        assert_eq!(
            (method, &endpoint[..]),
            (&Method::POST, "/settings/2/api-keys")
        );
        assert_eq!(*scheme, AuthScheme::ApiKey);
        assert_eq!(
            accepted,
            &[AuthScheme::Ibsso, AuthScheme::Basic, AuthScheme::OAuth2]
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        for name in [
            "POST /settings/2/api-keys",
            "`App`",
            "IBSSO",
            "Basic",
            "Bearer",
        ] {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn preflight_checks_the_scheme_before_the_scopes() -> Result<(), ConfigError> {
        // DELETE /auth/1/session accepts IBSSO only.
        let err = preflight(
            &Method::DELETE,
            "/auth/1/session",
            Some(AuthScheme::Basic),
            Some(&Scopes::new()),
            &Catalog::infobip(),
        );
        assert!(matches!(
            err.as_ref().map_err(Error::kind),
            Err(ErrorKind::SchemeNotAccepted { accepted, .. }) if accepted == &[AuthScheme::Ibsso]
        ));
        Ok(())
    }

    #[test]
    fn every_403_body_is_forbidden() -> Result<(), ConfigError> {
        let catalog = Catalog::infobip();
        let cases: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (SEED_403, Some("FORBIDDEN"), None),
            (
                br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#,
                Some("UNAUTHORIZED"),
                None,
            ),
            (
                br#"{"errorCode":"E403","description":"Forbidden.","action":"Check the API key scopes","violations":[],"resources":[]}"#,
                Some("E403"),
                None,
            ),
            (
                br#"{"status":403,"code":"PERMISSION_DENIED","message":"Client does not have sufficient permissions to perform this action."}"#,
                Some("PERMISSION_DENIED"),
                None,
            ),
            (b"", None, None),
            (b"<html>403 Forbidden</html>", None, Some("<html>403 Forbidden</html>")),
        ];
        for (body, code, raw) in cases {
            let err = classify(
                &Method::POST,
                "/sms/2/text/advanced",
                StatusCode::FORBIDDEN,
                body,
                &catalog,
                None,
            );
            let forbidden = err.as_ref().and_then(Error::forbidden).cloned();
            let Some(forbidden) = forbidden else {
                panic!("not forbidden: {}", String::from_utf8_lossy(body));
            };
            assert_eq!(forbidden.required, Some(sms_scopes()?));
            assert_eq!(forbidden.held, None);
            let api = forbidden.api.as_ref();
            assert_eq!(api.map(ApiError::status), Some(StatusCode::FORBIDDEN));
            assert_eq!(api.and_then(ApiError::code), code);
            assert_eq!(api.and_then(ApiError::raw), raw);
        }
        let malformed = classify(
            &Method::POST,
            "/sms/2/text/advanced",
            StatusCode::FORBIDDEN,
            br#"{"requestError": {"serviceExc"#,
            &catalog,
            None,
        );
        let raw = malformed
            .as_ref()
            .and_then(Error::forbidden)
            .and_then(|f| f.api.as_ref()?.raw());
        assert_eq!(raw, Some(r#"{"requestError": {"serviceExc"#));
        Ok(())
    }

    #[test]
    fn a_403_on_an_unknown_endpoint_names_the_path_and_no_scopes() -> Result<(), ConfigError> {
        let held: Scopes = "web:sdk".parse()?;
        let err = classify(
            &Method::GET,
            "/brand/new/endpoint?page=2",
            StatusCode::FORBIDDEN,
            SEED_403,
            &Catalog::infobip(),
            Some(&held),
        );
        let forbidden = err.as_ref().and_then(Error::forbidden).cloned();
        assert_eq!(
            forbidden
                .as_ref()
                .map(|f| (f.endpoint.as_str(), f.required.as_ref(), f.held.as_ref())),
            Some(("/brand/new/endpoint", None, Some(&held)))
        );
        Ok(())
    }

    #[test]
    fn a_403_on_a_templated_endpoint_names_the_template() {
        let err = classify(
            &Method::GET,
            "/2fa/2/applications/4F2A",
            StatusCode::FORBIDDEN,
            SEED_403,
            &Catalog::infobip(),
            None,
        );
        let endpoint = err.as_ref().and_then(Error::forbidden).map(|f| &f.endpoint);
        assert_eq!(
            endpoint.map(String::as_str),
            Some("/2fa/2/applications/{appId}")
        );
    }

    #[test]
    fn a_dotted_path_is_explained_by_the_operation_the_server_runs() -> Result<(), ConfigError> {
        // Written, the path fills `/catalogs/1/catalogs/{catalogId}/items/{itemId}`, which
        // `catalogs:use` grants; the server resolves `..` and deletes the catalogue.
        let held: Scopes = "catalogs:use".parse()?;
        let path = "/catalogs/1/catalogs/X/items/..";
        let catalog = Catalog::infobip();
        let err = classify(
            &Method::DELETE,
            path,
            StatusCode::FORBIDDEN,
            SEED_403,
            &catalog,
            Some(&held),
        );
        let forbidden = err.as_ref().and_then(Error::forbidden);
        assert_eq!(
            forbidden.map(|f| (f.endpoint.as_str(), f.required.clone())),
            Some((
                "/catalogs/1/catalogs/{id}",
                Some("catalogs:manage".parse()?)
            ))
        );
        let refused = preflight(
            &Method::DELETE,
            path,
            Some(AuthScheme::ApiKey),
            Some(&held),
            &catalog,
        );
        assert!(matches!(
            refused.as_ref().map_err(Error::kind),
            Err(ErrorKind::Forbidden(_))
        ));
        Ok(())
    }

    #[test]
    fn statuses_are_classified_as_documented() {
        #[derive(Debug, PartialEq)]
        enum Class {
            InvalidCredentials,
            Forbidden,
            Passed,
        }
        let catalog = Catalog::infobip();
        let body = br#"{"requestError":{"serviceException":{"messageId":"X","text":"y"}}}"#;
        let cases = [
            (StatusCode::OK, Class::Passed),
            (StatusCode::NO_CONTENT, Class::Passed),
            (StatusCode::BAD_REQUEST, Class::Passed),
            (StatusCode::UNAUTHORIZED, Class::InvalidCredentials),
            (StatusCode::FORBIDDEN, Class::Forbidden),
            (StatusCode::NOT_FOUND, Class::Passed),
            (StatusCode::TOO_MANY_REQUESTS, Class::Passed),
            (StatusCode::INTERNAL_SERVER_ERROR, Class::Passed),
            (StatusCode::BAD_GATEWAY, Class::Passed),
            (StatusCode::SERVICE_UNAVAILABLE, Class::Passed),
            (StatusCode::GATEWAY_TIMEOUT, Class::Passed),
        ];
        for (status, expected) in cases {
            let err = classify(
                &Method::POST,
                "/sms/2/text/advanced",
                status,
                body,
                &catalog,
                None,
            );
            let class = match err.as_ref().map(Error::kind) {
                None => Class::Passed,
                Some(ErrorKind::InvalidCredentials(api)) => {
                    assert_eq!((api.status(), api.code()), (status, Some("X")));
                    Class::InvalidCredentials
                }
                Some(ErrorKind::Forbidden(_)) => Class::Forbidden,
                Some(other) => panic!("{status}: unexpected {other:?}"),
            };
            assert_eq!(class, expected, "{status}");
            assert!(!err.is_some_and(|e| e.is_transient()), "{status}");
        }
    }

    #[test]
    fn user_overrides_drive_classification_and_preflight() -> Result<(), ConfigError> {
        let catalog = Catalog::infobip().with_operation(
            Method::POST,
            "/sms/2/text/advanced",
            "inbound-message:read".parse()?,
            &[AuthScheme::Basic],
        )?;
        let held: Scopes = "inbound-message:read".parse()?;
        let path = "/sms/2/text/advanced";
        assert!(
            preflight(
                &Method::POST,
                path,
                Some(AuthScheme::Basic),
                Some(&held),
                &catalog
            )
            .is_ok()
        );
        assert!(
            preflight(
                &Method::POST,
                path,
                Some(AuthScheme::ApiKey),
                Some(&held),
                &catalog
            )
            .is_err()
        );
        let err = classify(
            &Method::POST,
            path,
            StatusCode::FORBIDDEN,
            SEED_403,
            &catalog,
            None,
        );
        assert_eq!(
            err.as_ref()
                .and_then(Error::forbidden)
                .cloned()
                .and_then(|f| f.required),
            Some(held)
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_method_path_and_answer_classify_without_panic(
            method in prop_oneof![
                Just(Method::GET),
                Just(Method::POST),
                "[A-Z!#$%&'*+.^_`|~-]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap_or_default()),
            ],
            path in prop_oneof![
                ".{0,40}",
                "(/[a-z0-9]{1,6}){0,5}(\\?.{0,10})?",
                Just("/sms/2/text/advanced".to_owned()),
                Just("/settings/2/api-keys".to_owned()),
            ],
            status in prop_oneof![Just(401u16), Just(403), 100u16..600],
            body in proptest::collection::vec(any::<u8>(), 0..100),
            held in proptest::option::of("[a-z:, ]{0,30}"),
        ) {
            let catalog = Catalog::infobip();
            // An empty or invalid list is held as the empty set.
            let held = held.map(|h| h.parse::<Scopes>().unwrap_or_default());
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let classified = classify(&method, &path, status, &body, &catalog, held.as_ref());
            prop_assert_eq!(
                classified.is_some(),
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
            );
            for scheme in [None, Some(AuthScheme::ApiKey), Some(AuthScheme::Basic)] {
                if let Err(err) = preflight(&method, &path, scheme, held.as_ref(), &catalog) {
                    prop_assert!(
                        matches!(err.kind(), ErrorKind::SchemeNotAccepted { .. } | ErrorKind::Forbidden(_)),
                        "{:?}",
                        err
                    );
                    prop_assert!(catalog.lookup(&method, &path).is_some());
                }
            }
        }
    }
}
