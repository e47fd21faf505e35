//! Signing in. Any page whose API call is refused for want of a session comes here with
//! `?next=` set to itself, and goes back there afterwards.

use balancelab_shared::Credentials;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;

use crate::api;

/// `/login?next=PATH`: signs in, then goes back to `next`.
#[component]
pub(crate) fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let name = RwSignal::new(String::from("admin"));
    let password = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let next = (query.read_untracked().get("next"))
            .filter(|n| is_local_path(n))
            .unwrap_or_else(|| "/".into());
        let credentials = Credentials {
            name: name.get_untracked(),
            password: password.get_untracked(),
        };
        spawn_local(async move {
            match api::login(&credentials).await {
                Ok(_) => {
                    // A full load, so every part of the app starts signed in.
                    let location = web_sys::window().expect("a browser window").location();
                    let _ = location.assign(&next);
                }
                Err(api::ApiFailure(e)) => {
                    problem.set(Some(e.message));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <section class="card login">
            <h1>"Sign in"</h1>
            <p class="hint">
                "On its first start the server created the user admin and printed its password \
                 (or used BALANCELAB_ADMIN_PASSWORD)."
            </p>
            <form on:submit=submit>
                <label class="field">
                    <span>"User"</span>
                    <input
                        id="login-name"
                        autocomplete="username"
                        prop:value=move || name.get()
                        on:input=move |ev| name.set(event_target_value(&ev))
                    />
                </label>
                <label class="field">
                    <span>"Password"</span>
                    <input
                        id="login-password"
                        type="password"
                        autocomplete="current-password"
                        prop:value=move || password.get()
                        on:input=move |ev| password.set(event_target_value(&ev))
                    />
                </label>
                {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
                <button type="submit" id="login-submit" disabled=move || busy.get()>"Sign in"</button>
            </form>
        </section>
    }
}

/// The signed-in user's name and a way out, for the top bar; nothing when signed out.
#[component]
pub(crate) fn UserMenu() -> impl IntoView {
    let me = LocalResource::new(api::me);
    let sign_out = move |_| {
        spawn_local(async move {
            let _ = api::logout().await;
            let location = web_sys::window().expect("a browser window").location();
            let _ = location.assign(&api::login_url("/"));
        });
    };
    move || {
        me.get().and_then(|me| me.ok()).map(|me| {
            view! {
                <span class="user-menu">
                    <a href="/projects" id="projects-link">"Projects"</a>
                    <span id="signed-in-as">{me.user.name}</span>
                    <button type="button" id="sign-out" on:click=sign_out>"Sign out"</button>
                </span>
            }
        })
    }
}

/// Whether `next` is a path on this site, so that a crafted link cannot send the user
/// elsewhere after signing in: it starts with one `/`, and has no backslash (browsers read
/// `/\evil.com` as `//evil.com`, another host) and no control character or space (which
/// browsers strip before reading it).
fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn only_paths_on_this_site_are_followed() {
        for local in ["/", "/runs/7", "/compare?runs=1,2", "/runs?tag=a%2Fb"] {
            assert!(is_local_path(local), "{local}");
        }
        for elsewhere in [
            "//evil.com",
            "/\\evil.com",
            "/\\/evil.com",
            "https://evil.com",
            "evil.com",
            "/\t/evil.com",
            " //evil.com",
            "",
        ] {
            assert!(!is_local_path(elsewhere), "{elsewhere:?}");
        }
    }
}
