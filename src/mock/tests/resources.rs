//! Protected resources: credentials, schemes, scopes and the operations table.

use std::time::Duration;

use super::*;

const INBOX: &str = "/sms/1/inbox/reports";
const API_KEYS: &str = "/settings/2/api-keys";

#[tokio::test]
async fn every_scheme_sends_an_sms() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let credentials = [
        format!("App {DEMO_API_KEY}"),
        basic(DEMO_USERNAME, DEMO_PASSWORD),
        format!("IBSSO {}", http.session_token().await?),
        format!("Bearer {}", http.access_token().await?),
    ];
    for auth in &credentials {
        let answer = http.send_sms(Some(auth)).await?;
        assert_eq!(answer.status, StatusCode::OK, "{auth}");
        let json = answer.json()?;
        assert!(json["bulkId"].is_string(), "{json}");
        let message = &json["messages"][0];
        assert!(message["messageId"].is_string(), "{json}");
        assert_eq!(message["destination"], json!("41793026727"));
        assert_eq!(
            message["status"],
            json!({"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED", "description": "Message sent to next instance"})
        );
    }
    let schemes: Vec<String> = server.received().into_iter().map(|r| r.scheme).collect();
    assert_eq!(schemes, ["App", "Basic", "IBSSO", "Bearer"]);
    let counters = server.counters();
    for scheme in ["App", "Basic", "IBSSO", "Bearer"] {
        assert_eq!(counters.resource_requests(scheme), 1, "{scheme}");
    }
    Ok(())
}

#[tokio::test]
async fn the_inbox_answers_like_infobip() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let answer = http
        .get(INBOX, Some(&format!("App {DEMO_API_KEY}")))
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json()?,
        json!({"results": [], "messageCount": 0, "pendingMessageCount": 0})
    );
    Ok(())
}

#[tokio::test]
async fn send_sms_needs_destinations() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let auth = format!("App {DEMO_API_KEY}");
    let path = "/sms/2/text/advanced";
    for body in ["", "not json", r#"{"messages":[{"text":"no one"}]}"#] {
        http.call(
            Method::POST,
            path,
            Some(&auth),
            Some("application/json"),
            body,
        )
        .await?
        .assert_refused(StatusCode::BAD_REQUEST, "BAD_REQUEST", "");
    }
    Ok(())
}

#[tokio::test]
async fn missing_unknown_and_malformed_credentials_get_401() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let no_colon = {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(DEMO_USERNAME);
        format!("Basic {encoded}")
    };
    let wrong_password = basic(DEMO_USERNAME, "wrong");
    let cases: [Option<&str>; 10] = [
        None,
        Some(""),
        Some("App"),
        Some("App not-a-key"),
        Some("Basic !!!not base64!!!"),
        Some(&no_colon),
        Some("IBSSO 00000000-0000-4000-8000-000000000000"),
        Some("Bearer unknown"),
        Some("Digest username=x"),
        Some(&wrong_password),
    ];
    for auth in cases {
        http.send_sms(auth).await?.assert_unauthorized();
    }
    // A header value that is not text.
    let request = Request::post(format!("{}/sms/2/text/advanced", http.base))
        .header(
            AUTHORIZATION,
            http::HeaderValue::from_bytes(b"App \xff\xfe")?,
        )
        .body(Full::from(SMS))?;
    http.send(request).await?.assert_unauthorized();

    let counters = server.counters();
    assert_eq!(counters.unauthorized, 11);
    assert_eq!(counters.resource_requests("none"), 5);
    assert_eq!(counters.resource_requests("Basic"), 3);
    Ok(())
}

/// `Authorization` is a single-valued field (RFC 9110 §11.6.2): a request with two is refused
/// whatever they hold, so a client that adds its credential beside one already set is caught
/// rather than served by whichever the server reads first.
#[tokio::test]
async fn several_authorization_headers_get_401() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let key = format!("App {DEMO_API_KEY}");
    let session = format!("IBSSO {}", http.session_token().await?);
    for pair in [[&key, &key], [&key, &session], [&session, &key]] {
        let mut request = Request::post(format!("{}/sms/2/text/advanced", http.base))
            .header(CONTENT_TYPE, "application/json");
        for value in pair {
            request = request.header(AUTHORIZATION, value.as_str());
        }
        http.send(request.body(Full::from(SMS))?)
            .await?
            .assert_unauthorized();
    }
    let delete = Request::delete(format!("{}/auth/1/session", http.base))
        .header(AUTHORIZATION, session.as_str())
        .header(AUTHORIZATION, session.as_str())
        .body(Full::default())?;
    http.send(delete).await?.assert_unauthorized();
    let counters = server.counters();
    assert_eq!(counters.unauthorized, 3);
    assert_eq!(counters.resource_requests("none"), 3, "{counters:?}");
    assert_eq!(
        counters.session_events,
        [SessionEvent::Created { session: 1 }]
    );
    Ok(())
}

#[tokio::test]
async fn a_credential_without_the_scope_gets_403() -> TestResult {
    let config = MockConfig::new().api_key("reader", "inbound-message:read");
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let auth = "App reader";
    http.send_sms(Some(auth)).await?.assert_forbidden();
    assert_eq!(http.get(INBOX, Some(auth)).await?.status, StatusCode::OK);
    let counters = server.counters();
    assert_eq!((counters.forbidden, counters.unauthorized), (1, 0));
    let statuses: Vec<StatusCode> = server.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [StatusCode::FORBIDDEN, StatusCode::OK]);
    Ok(())
}

#[tokio::test]
async fn key_management_refuses_api_keys_even_with_the_scope() -> TestResult {
    let config = MockConfig::new()
        .api_key("admin-key", "account-management:manage")
        .user("admin", "pw", "account-management:manage");
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    http.get(API_KEYS, Some("App admin-key"))
        .await?
        .assert_unauthorized();
    let answer = http.get(API_KEYS, Some(&basic("admin", "pw"))).await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()?, json!({}));
    let demo = MockServer::start().await?;
    let http = Http::new(&demo);
    http.get(API_KEYS, Some(&basic(DEMO_USERNAME, DEMO_PASSWORD)))
        .await?
        .assert_forbidden();
    Ok(())
}

#[tokio::test]
async fn revoked_keys_and_tokens_get_401() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let key = format!("App {DEMO_API_KEY}");
    let session = http.session_token().await?;
    let access = http.access_token().await?;
    assert_eq!(http.send_sms(Some(&key)).await?.status, StatusCode::OK);

    server.revoke_api_key(DEMO_API_KEY);
    http.send_sms(Some(&key)).await?.assert_unauthorized();

    server.revoke_token(&session);
    http.send_sms(Some(&format!("IBSSO {session}")))
        .await?
        .assert_unauthorized();
    let bearer = format!("Bearer {access}");
    assert_eq!(http.send_sms(Some(&bearer)).await?.status, StatusCode::OK);
    server.revoke_all_tokens();
    http.send_sms(Some(&bearer)).await?.assert_unauthorized();

    // Basic credentials are not tokens: they still work.
    let auth = basic(DEMO_USERNAME, DEMO_PASSWORD);
    assert_eq!(http.send_sms(Some(&auth)).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn expire_all_ends_sessions_tokens_and_codes() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let session = format!("IBSSO {}", http.session_token().await?);
    let access = format!("Bearer {}", http.access_token().await?);
    server.expire_all();
    http.send_sms(Some(&session)).await?.assert_unauthorized();
    http.send_sms(Some(&access)).await?.assert_unauthorized();
    let key = format!("App {DEMO_API_KEY}");
    assert_eq!(http.send_sms(Some(&key)).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn expiring_api_keys_stop_working() -> TestResult {
    let config = MockConfig::new().api_key_expiring("short", "sms:manage", Duration::from_secs(30));
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    assert_eq!(
        http.send_sms(Some("App short")).await?.status,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    http.send_sms(Some("App short"))
        .await?
        .assert_unauthorized();
    Ok(())
}

#[tokio::test]
async fn unknown_paths_and_methods_get_infobip_errors() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let auth = format!("App {DEMO_API_KEY}");
    http.get("/nowhere/1/at-all", Some(&auth))
        .await?
        .assert_refused(StatusCode::NOT_FOUND, "NOT_FOUND", "");
    http.call(
        Method::DELETE,
        "/sms/2/text/advanced",
        Some(&auth),
        None,
        "",
    )
    .await?
    .assert_refused(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "");
    http.get("/auth/1/oauth2/token", None)
        .await?
        .assert_refused(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "");
    assert_eq!(server.received().len(), 2);
    Ok(())
}

#[tokio::test]
async fn all_operations_enforce_the_specifications_rules() -> TestResult {
    let config = MockConfig::new()
        .api_key("key", "account-management:manage 2fa:manage")
        .user("admin", "pw", "account-management:manage")
        .all_operations();
    let server = MockServer::start_with(config).await?;
    assert_eq!(server.operation_count(), 943);
    let http = Http::new(&server);

    let post = |auth: String| {
        let http = &http;
        async move {
            http.call(
                Method::POST,
                API_KEYS,
                Some(&auth),
                Some("application/json"),
                "{}",
            )
            .await
        }
    };
    post("App key".to_owned()).await?.assert_unauthorized();
    assert_eq!(post(basic("admin", "pw")).await?.status, StatusCode::OK);

    let app = "/2fa/2/applications/0123456789ABCDEF";
    assert_eq!(http.get(app, Some("App key")).await?.status, StatusCode::OK);
    http.get(app, Some(&basic("admin", "pw")))
        .await?
        .assert_forbidden();
    // Operations with neither scopes nor schemes are public.
    assert_eq!(
        http.get("/platform/1/openapi", None).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn configured_operations_are_enforced() -> TestResult {
    let config = MockConfig::new()
        .api_key("key", "custom:read")
        .oauth_client("id", "secret", "custom:read")
        .operation(
            Method::GET,
            "/custom/1/things/{id}",
            "custom:read",
            "Bearer",
        )
        .operation(Method::PUT, "/custom/1/things/{id}", "custom:write", "App");
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let form = [
        ("client_id", "id"),
        ("client_secret", "secret"),
        ("grant_type", "client_credentials"),
    ];
    let token = string_field(
        &http.post_form("/auth/1/oauth2/token", &form).await?,
        "access_token",
    )?;
    let path = "/custom/1/things/42";
    let answer = http.get(path, Some(&format!("Bearer {token}"))).await?;
    assert_eq!(answer.status, StatusCode::OK);
    http.get(path, Some("App key")).await?.assert_unauthorized();
    http.call(Method::PUT, path, Some("App key"), None, "")
        .await?
        .assert_forbidden();
    Ok(())
}

/// An operation that lists scopes but no scheme (the specification's `GET /sms/1/text/query`)
/// takes any scheme, as the crate's catalogue reads it (`Operation::accepts`) and as OpenAPI
/// reads an operation without its own `security`: the document's applies. It used to take
/// none, so no credential could ever call it.
#[tokio::test]
async fn scopes_without_schemes_take_any_scheme() -> TestResult {
    let config = MockConfig::demo()
        .api_key("reader", "inbound-message:read")
        .operation(Method::GET, "/custom/1/things", "sms:manage", "")
        .all_operations();
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let key = format!("App {DEMO_API_KEY}");
    let session = format!("IBSSO {}", http.session_token().await?);
    for path in ["/custom/1/things", "/sms/1/text/query"] {
        for auth in [&key, &session] {
            let answer = http.get(path, Some(auth)).await?;
            assert_eq!(answer.status, StatusCode::OK, "{path} {}", &auth[..5]);
        }
        http.get(path, Some("App reader")).await?.assert_forbidden();
        http.get(path, Some("App unknown"))
            .await?
            .assert_unauthorized();
        http.get(path, None).await?.assert_unauthorized();
    }
    Ok(())
}

/// A path is routed as a server reads it: a percent-encoded unreserved character is that
/// character (RFC 3986 §6.2.2.2), as the crate's catalogue reads paths too; reserved ones, case
/// and slashes count as written.
#[tokio::test]
async fn percent_encoded_unreserved_characters_route_as_themselves() -> TestResult {
    let server = MockServer::start().await?;
    let http = Http::new(&server);
    let key = format!("App {DEMO_API_KEY}");
    for path in [
        "/sms/1/inbox/report%73",
        "/%73ms/1/inbox/reports",
        "/sms/1/%69%6E%62ox/reports",
    ] {
        assert_eq!(
            http.get(path, Some(&key)).await?.status,
            StatusCode::OK,
            "{path}"
        );
    }
    http.get("/settings/2/api-key%73", Some(&key))
        .await?
        .assert_unauthorized();
    for path in [
        "/sms/1/inbox%2Freports",
        "/sms/1/inbox/reports%2F",
        "/SMS/1/inbox/reports",
        "/sms/1/inbox/reports%",
        "/sms/1/inbox/reports%7",
        "/sms/1/inbox/report%7g",
    ] {
        let answer = http.get(path, Some(&key)).await?;
        answer.assert_refused(StatusCode::NOT_FOUND, "NOT_FOUND", "");
    }
    // The authentication endpoints are read the same way.
    let login = json!({"username": DEMO_USERNAME, "password": DEMO_PASSWORD}).to_string();
    let json = Some("application/json");
    let created = http
        .call(Method::POST, "/auth/1/%73ession", None, json, login)
        .await?;
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(server.counters().session_creates, 1);
    let paths: Vec<String> = server.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths.first().map(String::as_str),
        Some("/sms/1/inbox/report%73")
    );
    Ok(())
}

/// `HEAD` is answered as `GET` would be (RFC 9110 §9.3.2): the same checks, the same status.
#[tokio::test]
async fn head_is_checked_and_answered_as_get() -> TestResult {
    let config = (MockConfig::demo().api_key("sender", "message:send")).user(
        "admin",
        "admin-password",
        "account-management:manage",
    );
    let server = MockServer::start_with(config).await?;
    let http = Http::new(&server);
    let head = |path: &'static str, auth: Option<&'static str>| {
        http.call(Method::HEAD, path, auth, None, Bytes::new())
    };
    let key = format!("App {DEMO_API_KEY}");
    let answer = head(INBOX, None).await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.body.is_empty());
    assert_eq!(
        head(INBOX, Some("App sender")).await?.status,
        StatusCode::FORBIDDEN
    );
    let answer = http.call(Method::HEAD, INBOX, Some(&key), None, "").await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    // An API key is refused on key management, whatever the method.
    let answer = http
        .call(Method::HEAD, API_KEYS, Some(&key), None, "")
        .await?;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = http
        .call(
            Method::HEAD,
            API_KEYS,
            Some(&basic("admin", "admin-password")),
            None,
            "",
        )
        .await?;
    assert_eq!(answer.status, StatusCode::OK);

    let counters = server.counters();
    assert_eq!((counters.unauthorized, counters.forbidden), (2, 1));
    let methods: Vec<Method> = server.received().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, [Method::HEAD; 5]);
    Ok(())
}

/// A trailing slash is ignored where the path means nothing with it, as the scope catalogue
/// reads paths; a parameter is never empty.
#[tokio::test]
async fn a_trailing_slash_is_ignored_as_the_catalogue_ignores_it() -> TestResult {
    let server = MockServer::start_with(MockConfig::demo().all_operations()).await?;
    let http = Http::new(&server);
    let key = format!("App {DEMO_API_KEY}");
    for path in ["/sms/1/inbox/reports/", "/sms/1/inbox/report%73/"] {
        let answer = http.get(path, Some(&key)).await?;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.json()?["messageCount"], json!(0), "{path}");
    }
    let json = Some("application/json");
    let answer = http
        .call(Method::POST, "/sms/2/text/advanced/", Some(&key), json, SMS)
        .await?;
    assert_eq!(answer.status, StatusCode::OK);
    // Without a credential, it is the operation's 401 and no 404.
    http.get("/sms/1/inbox/reports/", None)
        .await?
        .assert_unauthorized();
    // `/2fa/2/applications/` is the list, not an application with an empty id.
    let catalog = crate::Catalog::infobip();
    let list = catalog
        .lookup(&Method::GET, "/2fa/2/applications/")
        .map(|op| op.template);
    assert_eq!(list, Some("/2fa/2/applications"));
    assert_eq!(
        http.get("/2fa/2/applications/", None).await?.status,
        StatusCode::UNAUTHORIZED
    );
    // Only one slash is ignored, and a path means what it says before its slash is dropped.
    let doubled = http.get("/sms/1/inbox/reports//", Some(&key)).await?;
    doubled.assert_refused(StatusCode::NOT_FOUND, "NOT_FOUND", "Not found");
    let paths: Vec<String> = server.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths[0], "/sms/1/inbox/reports/", "recorded as sent");
    Ok(())
}
