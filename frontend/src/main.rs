//! BalanceLab's browser UI: configure a run, start it, watch its modality contribution
//! curves live.

mod api;
mod chart;
mod chart_export;
mod pages;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The page frame (top bar) and the route's page.
#[component]
fn App() -> impl IntoView {
    view! {
        <Router>
            <header class="topbar">
                <A href="/">
                    <img src="/static/favicon.svg" alt="" width="24" height="24" />
                    <span class="brand">"BalanceLab"</span>
                </A>
                <span class="tagline">"balanced multimodal learning"</span>
                <pages::UserMenu />
            </header>
            <main>
                <Routes fallback=|| view! { <p>"Page not found."</p> }>
                    <Route path=path!("/") view=pages::HomePage />
                    <Route path=path!("/runs/:id") view=pages::RunPage />
                    <Route path=path!("/compare") view=pages::ComparePage />
                    <Route path=path!("/projects") view=pages::ProjectsPage />
                    <Route path=path!("/login") view=pages::LoginPage />
                </Routes>
            </main>
        </Router>
    }
}
