//! The HTML pages, rendered with maud (values are escaped).

use maud::{DOCTYPE, Markup, html};

/// The password the login form accepts, shown on the page.
pub(crate) const PASSWORD: &str = "letmein";

const STYLE: &str = "
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #1d2430; }
nav a { margin-right: 1rem; }
.flash { background: #e7f5e9; border: 1px solid #8fcf99; padding: .6rem 1rem; border-radius: .4rem; }
.count { font-size: 2.5rem; font-weight: 700; }
form.stacked label { display: block; margin: .6rem 0 .2rem; }
form.stacked input { padding: .4rem; width: 16rem; }
button { margin-top: .8rem; padding: .4rem 1rem; }
code { background: #f0f2f5; padding: 0 .3rem; border-radius: .2rem; }
";

fn layout(title: &str, user: Option<&str>, flash: Option<&str>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sessions in memcached" }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                nav {
                    a href="/" { "Home" }
                    a href="/dashboard" { "Dashboard" }
                    @if user.is_none() { a href="/login" { "Log in" } }
                }
                @if let Some(message) = flash {
                    p.flash role="status" id="flash" { (message) }
                }
                h1 { (title) }
                (body)
            }
        }
    }
}

fn logout_form(csrf: &str) -> Markup {
    html! {
        form method="post" action="/logout" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" id="logout" { "Log out" }
        }
    }
}

/// The home page: the visit counter.
pub(crate) fn home(visits: u64, user: Option<&str>, flash: Option<&str>, csrf: &str) -> Markup {
    let body = html! {
        p { "You have visited this page" }
        p.count id="visits" { (visits) }
        p { "times in this session. Reload to count up; every app server sharing the memcached sees the same number." }
        @match user {
            Some(user) => {
                p { "Logged in as " strong { (user) } "." }
                (logout_form(csrf))
            }
            None => p { a href="/login" { "Log in" } " to see the dashboard." },
        }
    };
    layout("Visit counter", user, flash, &body)
}

/// The login form.
pub(crate) fn login(flash: Option<&str>, csrf: &str) -> Markup {
    let body = html! {
        p { "Any username works; the password is " code { (PASSWORD) } "." }
        form.stacked method="post" action="/login" {
            input type="hidden" name="csrf" value=(csrf);
            label for="username" { "Username" }
            input id="username" name="username" required maxlength="64" autocomplete="username";
            label for="password" { "Password" }
            input id="password" name="password" type="password" required autocomplete="current-password";
            div { button type="submit" id="submit" { "Log in" } }
        }
    };
    layout("Log in", None, flash, &body)
}

/// The dashboard, for logged-in users.
pub(crate) fn dashboard(user: &str, visits: u64, flash: Option<&str>, csrf: &str) -> Markup {
    let body = html! {
        p id="greeting" { "Hello, " strong { (user) } "." }
        p { "Home page visits in this session: " strong { (visits) } }
        p { "Your session lives in memcached, under the SHA-256 of its id; the cookie holds only the signed id." }
        (logout_form(csrf))
    };
    layout("Dashboard", Some(user), flash, &body)
}

/// A refused form post.
pub(crate) fn forbidden() -> Markup {
    let body = html! {
        p { "The form was stale or forged (its CSRF token did not match). Go back, reload the page and try again." }
    };
    layout("Forbidden", None, None, &body)
}
