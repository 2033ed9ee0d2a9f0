//! Sessions of the web page: a random token in an HttpOnly, SameSite=Strict cookie (Secure
//! over HTTPS) naming a logged-in [`Actor`]; a CSRF token per session that every form
//! carries back; sessions end after 30 idle minutes or at logout. Held in memory: a
//! restarted station asks everyone to log in again.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

use crate::Actor;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "custody_session";
/// The cookie carrying the login form's CSRF token (before there is a session).
pub const LOGIN_COOKIE: &str = "custody_login";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_mins(30);
/// How long a playback grant lets a browser fetch ranges of a clip after its access event.
pub const GRANT: Duration = Duration::from_mins(10);

/// One logged-in person.
#[derive(Clone)]
pub struct Session {
    /// Who.
    pub actor: Actor,
    /// The token every form of this session must carry.
    pub csrf: String,
    /// Clips whose playback event was written: record hash → until when ranges are served.
    pub grants: HashMap<String, Instant>,
    last_used: Instant,
}

/// Every live session, by token.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A fresh random token (32 bytes, hex).
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    // The system's randomness failing leaves a token that matches no session's.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    hex::encode(bytes)
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request's headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over HTTPS; `max_age`
/// 0 removes it.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        let _ = write!(c, "; Max-Age={age}");
    }
    c
}

impl Sessions {
    /// Starts a session for `actor`; returns its token.
    pub fn start(&self, actor: Actor) -> String {
        let token = token();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, s| now.duration_since(s.last_used) < IDLE);
        map.insert(
            token.clone(),
            Session {
                actor,
                csrf: self::token(),
                grants: HashMap::new(),
                last_used: now,
            },
        );
        token
    }

    /// The session of the request's cookie, if it is live (its idle time restarts).
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let live = map
            .get(&token)
            .is_some_and(|s| now.duration_since(s.last_used) < IDLE);
        if !live {
            map.remove(&token);
            return None;
        }
        let session = map.get_mut(&token)?;
        session.last_used = now;
        Some((token, session.clone()))
    }

    /// Ends a session.
    pub fn end(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// Records that the playback event of clip `record` was written for this session.
    pub fn grant(&self, token: &str, record: &str) {
        if let Some(s) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(token)
        {
            s.grants.insert(record.to_owned(), Instant::now() + GRANT);
        }
    }
}

impl Session {
    /// Whether ranges of clip `record` may be served without a new playback event.
    pub fn granted(&self, record: &str) -> bool {
        self.grants
            .get(record)
            .is_some_and(|until| Instant::now() < *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_tokens_compare_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; custody_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", ""));
        let c = set_cookie(SESSION_COOKIE, "x", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "x", false, Some(0)).contains("Secure"));
        assert_ne!(token(), token());
    }
}
