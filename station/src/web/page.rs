//! The page around every page: head (embedded style and scripts), the navigation for the
//! person's role, who is logged in and the logout form.

use custody::Role;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::Actor;

/// A whole page titled `title` with `body`, for `who` (with their session's `csrf` for the
/// logout form), or for nobody logged in.
pub fn layout(title: &str, who: Option<&Actor>, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — 采集站工作台" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/htmx.min.js" {}
                script src="/assets/htmx-ext-sse.min.js" {}
            }
            body {
                header {
                    strong { "采集站工作台" }
                    @if let Some(actor) = who {
                        nav {
                            a href="/dock" { "采集" }
                            @if actor.role() != Role::It {
                                a href="/cases" { "案件" }
                            }
                            @if !matches!(actor.role(), Role::It | Role::Officer) {
                                a href="/reports" { "报告" }
                            }
                            @if actor.role() != Role::Officer {
                                a href="/discs" { "光盘" }
                            }
                            @if actor.role() != Role::It {
                                a href="/requests" { "审批" }
                            }
                            a href="/fleet" { "设备" }
                            a href="/log" { "日志" }
                        }
                        span.who { (actor.person().name) "（" (actor.role().name_zh()) "）" }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(csrf.unwrap_or_default());
                            button type="submit" { "退出" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (PreEscaped(body.into_string()))
                }
            }
        }
    }
}
