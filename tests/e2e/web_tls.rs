//! The station web page over HTTPS with an agency certificate (a test CA made with the
//! openssl CLI): a browser that trusts the CA gets the login page and a session cookie
//! marked Secure; plain HTTP to the same port gets no page; and plain HTTP is refused off
//! loopback when the page is configured.

use std::sync::Arc;

use custody_station::WebSettings;

use crate::disc::bound_case_station;
use crate::util::certificates;

#[test]
fn the_web_page_is_served_over_https_with_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (station, _clerk) = bound_case_station(dir.path());
    let tls = custody_station::tls_config(
        &dir.path().join("station.pem"),
        &dir.path().join("station.key"),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(custody_station::serve_web_on(
        Arc::new(station),
        listener,
        Some(tls),
        false,
    ));
    let client = custody_agent::upload::client(&dir.path().join("ca.pem")).unwrap();
    rt.block_on(async {
        let page = client
            .get(format!("https://127.0.0.1:{port}/login"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status().as_u16(), 200);
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            cookie.contains("Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        assert!(page.text().await.unwrap().contains("登录"));
        // Plain HTTP to the HTTPS port: no page.
        let plain = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tokio::task::spawn_blocking(move || {
                use std::io::{Read as _, Write as _};
                let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                tcp.set_read_timeout(Some(std::time::Duration::from_secs(15)))
                    .unwrap();
                let _ = tcp.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut got = Vec::new();
                let _ = tcp.read_to_end(&mut got);
                got
            }),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("登录"));
    });
    // Configured off loopback without a certificate: refused.
    let err = WebSettings::new("0.0.0.0:8080".parse().unwrap(), None, None).unwrap_err();
    assert!(err.contains("not loopback"), "{err}");
    assert!(WebSettings::new("127.0.0.1:8080".parse().unwrap(), None, None).is_ok());
}
