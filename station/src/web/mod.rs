//! The station web page (采集站工作台): server-rendered Chinese pages (maud: typed,
//! escaped HTML) with htmx and its SSE extension embedded in the binary, behind the
//! station's accounts. Every page acts as the logged-in person through the same Station
//! API as the CLI, so the same rights and access events hold: IT sees no footage, an
//! officer their own clips, every view and playback is logged before it is served.
//! HTTPS with the agency certificate; plain HTTP only on loopback.

mod assets;
mod cases;
mod discs;
mod dock;
mod fleet;
mod log;
mod login;
mod page;
mod reports;
mod requests;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub use reports::PAGE as REPORT_PAGE;
pub use session::{LOGIN_COOKIE, SESSION_COOKIE};

use crate::{Station, WebSettings};
use session::{Session, Sessions};

/// What every handler shares.
pub(crate) struct Web {
    station: Arc<Station>,
    sessions: Sessions,
    /// Cookies get `Secure` (the page is served over HTTPS).
    secure: bool,
    /// Served inside the daemon, whose progress board is live.
    inside_daemon: bool,
    /// The dock page opens without a login on the station's own screen.
    dock_without_login: bool,
    /// Outcomes of disc work that outlasted its request, by person, until shown.
    disc_notes: std::sync::Mutex<std::collections::HashMap<u64, Vec<String>>>,
}

type State = axum::extract::State<Arc<Web>>;

/// An error page: a status and what to tell the person.
pub(crate) struct WebError {
    status: StatusCode,
    message: String,
}

impl WebError {
    /// A refusal or a failure from the station, as the person should read it: a refused
    /// right is 403, anything else the request could not do is 400.
    fn from_station(e: &anyhow::Error) -> Self {
        let message = format!("{e:#}");
        let status = if message.contains("refused") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        Self { status, message }
    }

    fn forbidden(message: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        // The station's refusals start with an English word for logs and scripts; people
        // read the Chinese.
        let message = match self.message.strip_prefix("refused: ") {
            Some(rest) => format!("已拒绝：{rest}"),
            None => self.message,
        };
        let title = if self.status == StatusCode::FORBIDDEN {
            "无权操作"
        } else {
            "无法完成"
        };
        let body = page::layout(
            title,
            None,
            None,
            maud::html! {
                p.error { (message) }
                p { a href="javascript:history.back()" { "返回上一页" } " · " a href="/" { "首页" } }
            },
        );
        (self.status, body).into_response()
    }
}

/// A page handler's logged-in person: without a live session the request is sent to
/// the login page before the handler runs.
pub(crate) struct LoggedIn(pub(crate) Session);

impl axum::extract::FromRequestParts<Arc<Web>> for LoggedIn {
    type Rejection = Denied;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        web: &Arc<Web>,
    ) -> Result<Self, Denied> {
        web.session(&parts.headers).map(|(_, s)| Self(s))
    }
}

/// Why a request gets no page: no session (to the login page), or refused outright.
pub(crate) enum Denied {
    /// No live session.
    Login,
    /// Refused, with what to tell the person.
    Forbidden(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Self::Login => Redirect::to("/login").into_response(),
            Self::Forbidden(why) => WebError::forbidden(why).into_response(),
        }
    }
}

impl Web {
    /// The request's session, or a redirect to the login page.
    fn session(&self, headers: &HeaderMap) -> Result<(String, Session), Denied> {
        self.sessions.get(headers).ok_or(Denied::Login)
    }

    /// Whether a request from `peer` may see the dock page without a session: when
    /// configured so, and only from the station itself (its own screen). Behind a
    /// reverse proxy on the same machine every viewer would look local: leave it off.
    fn dock_open_to(&self, peer: SocketAddr) -> bool {
        self.dock_without_login && own_screen(peer)
    }

    /// The session, and the form's CSRF token checked against it.
    fn checked(&self, headers: &HeaderMap, csrf: &str) -> Result<(String, Session), Denied> {
        let (token, session) = self.session(headers)?;
        if !session::same_token(&session.csrf, csrf) {
            return Err(Denied::Forbidden(
                "表单已失效（CSRF 校验失败），请刷新页面后重试",
            ));
        }
        Ok((token, session))
    }

    /// Runs station work off the async threads (SQL, fsync, signing, file reads).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Station) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, WebError> {
        let station = Arc::clone(&self.station);
        match tokio::task::spawn_blocking(move || work(&station)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(WebError::from_station(&e)),
            Err(e) => Err(WebError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("内部错误：{e}"),
            }),
        }
    }
}

/// Whether a connection comes from the station itself: a loopback peer, an IPv4 one
/// seen through a dual-stack socket included.
fn own_screen(peer: SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

/// The page's routes.
pub(crate) fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/dock", get(dock::page))
        .route("/dock/events", get(dock::events))
        .route("/cases", get(cases::search))
        .route("/cases/{number}", get(cases::case))
        .route("/clips/{record}", get(cases::clip))
        .route("/clips/{record}/media", get(cases::media))
        .route("/requests", get(requests::list).post(requests::create))
        .route("/requests/{id}", get(requests::show))
        .route("/requests/{id}/decide", post(requests::decide))
        .route("/requests/{id}/export", post(requests::export))
        .route("/requests/{id}/download", get(requests::download))
        .route("/reports", get(reports::page))
        .route("/fleet", get(fleet::page))
        .route("/discs", get(discs::page))
        .route("/discs/build", post(discs::build))
        .route("/discs/burn", post(discs::burn))
        .route("/discs/verify", post(discs::verify))
        .route("/discs/events", get(discs::events))
        .route("/log", get(log::page))
        .route("/log/checkpoint", get(log::checkpoint))
        .route("/log/inclusion", get(log::inclusion))
        .route("/log/consistency", get(log::consistency))
        .route("/assets/{file}", get(assets::file))
        .layer(axum::middleware::map_response(no_store))
        .with_state(web)
}

/// Pages hold evidence: never cached by the browser or a proxy.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(header::HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert("x-frame-options", header::HeaderValue::from_static("DENY"));
    response
}

async fn home(axum::extract::State(web): State, headers: HeaderMap) -> Response {
    match web.session(&headers) {
        Ok((_, s)) if s.actor.role() == custody::Role::It => Redirect::to("/dock").into_response(),
        Ok(_) => Redirect::to("/cases").into_response(),
        Err(denied) => denied.into_response(),
    }
}

/// Serves the web page on `settings.listen` until the task is dropped; `inside_daemon`
/// when the dock's live progress is this process's.
///
/// # Errors
/// The address cannot be bound, or the certificate cannot be read.
pub async fn serve(
    station: Arc<Station>,
    settings: WebSettings,
    inside_daemon: bool,
) -> anyhow::Result<()> {
    let tls = match &settings.tls {
        Some((cert, key)) => Some(crate::upload::tls_config(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding the web page to {}", settings.listen))?;
    tracing::info!(listen = %settings.listen, https = tls.is_some(), "web page listening");
    serve_on(station, listener, tls, inside_daemon).await
}

/// Serves the web page on a bound `listener` (over TLS with `tls`) until the task is
/// dropped.
///
/// # Errors
/// The listener fails.
pub async fn serve_on(
    station: Arc<Station>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    inside_daemon: bool,
) -> anyhow::Result<()> {
    let dock_without_login = station
        .config()
        .web
        .as_ref()
        .is_some_and(|w| w.dock_without_login);
    let web = Arc::new(Web {
        station,
        sessions: Sessions::default(),
        secure: tls.is_some(),
        inside_daemon,
        dock_without_login,
        disc_notes: std::sync::Mutex::default(),
    });
    let app = router(web);
    match tls {
        None => {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).await?;
        }
        Some(tls) => serve_tls(listener, app, tls).await,
    }
    Ok(())
}

/// The accept loop over TLS (as the upload endpoint does it).
async fn serve_tls(listener: tokio::net::TcpListener, app: Router, tls: Arc<rustls::ServerConfig>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer): (tokio::net::TcpStream, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a web connection; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp));
            let Ok(Ok(stream)) = handshake.await else {
                tracing::info!(%peer, "web TLS handshake failed");
                return;
            };
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                let app = app.clone();
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                async move {
                    use tower_service::Service as _;
                    let mut app = app;
                    app.call(req).await
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::info!(%peer, error = %e, "web connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::own_screen;

    #[test]
    fn only_the_station_itself_is_its_own_screen() {
        for (peer, own) in [
            ("127.0.0.1:50000", true),
            ("[::1]:50000", true),
            ("[::ffff:127.0.0.1]:50000", true),
            ("10.20.0.5:50000", false),
            ("192.168.1.20:50000", false),
            ("[::ffff:192.168.1.20]:50000", false),
            ("[fe80::1]:50000", false),
        ] {
            assert_eq!(own_screen(peer.parse().unwrap()), own, "{peer}");
        }
    }
}
