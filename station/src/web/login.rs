//! Logging in and out. The login form carries a CSRF token that must match its own
//! cookie (there is no session yet); a login, and every refused one, is an access event
//! (the Station's `login` writes it); lockout is the station's.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use custody::Role;
use maud::html;
use serde::Deserialize;

use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::{Web, WebError, page};
use crate::Credential;

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    login: String,
    password: String,
    #[serde(default)]
    role: String,
    csrf: String,
}

/// The logout form's fields.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

fn login_page(web: &Web, error: Option<&str>, status: StatusCode) -> Response {
    let token = session::token();
    let body = html! {
        @if let Some(e) = error { p.error { (e) } }
        form.stack method="post" action="/login" {
            input type="hidden" name="csrf" value=(token);
            label for="login" { "账号" }
            input #login type="text" name="login" autocomplete="username" required autofocus;
            label for="password" { "密码" }
            input #password type="password" name="password" autocomplete="current-password" required;
            label for="role" { "角色（兼任多个角色时选择）" }
            select #role name="role" {
                option value="" { "按账号角色" }
                @for role in Role::ALL {
                    option value=(role.as_str()) { (role.name_zh()) }
                }
            }
            p { button type="submit" { "登录" } }
        }
    };
    let cookie = session::set_cookie(LOGIN_COOKIE, &token, web.secure, Some(600));
    (
        status,
        [(header::SET_COOKIE, cookie)],
        page::layout("登录", None, None, body),
    )
        .into_response()
}

/// `GET /login`.
pub async fn form(State(web): State<Arc<Web>>) -> Response {
    login_page(&web, None, StatusCode::OK)
}

/// `POST /login`: the station checks the password (argon2id) and the lockout.
pub async fn submit(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !session::same_token(&expected, &form.csrf) {
        return WebError::forbidden("登录表单已失效，请刷新页面后重试").into_response();
    }
    let role = Role::from_id(&form.role);
    let LoginForm {
        login, password, ..
    } = form;
    let result = web
        .blocking(move |station| station.login(&login, Credential::Password(&password), role))
        .await;
    match result {
        Ok(actor) => {
            let token = web.sessions.start(actor);
            let set = session::set_cookie(SESSION_COOKIE, &token, web.secure, None);
            let clear = session::set_cookie(LOGIN_COOKIE, "", web.secure, Some(0));
            let mut response = Redirect::to("/").into_response();
            let h = response.headers_mut();
            for c in [set, clear] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(e) => login_page(&web, Some(&e.message), StatusCode::UNAUTHORIZED),
    }
}

/// `POST /logout`.
pub async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    match web.checked(&headers, &form.csrf) {
        Ok((token, _)) => {
            web.sessions.end(&token);
            let clear = session::set_cookie(SESSION_COOKIE, "", web.secure, Some(0));
            ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
        }
        Err(denied) => denied.into_response(),
    }
}
