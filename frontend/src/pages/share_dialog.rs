//! Sharing a run: teammates get a role in its project (viewer, editor, owner); anyone else
//! gets a read-only link to this run alone, which can be revoked.

use balancelab_shared::{Member, Role, ShareLink};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiFailure};

#[component]
pub fn ShareDialog(run_id: i64, project_id: i64) -> impl IntoView {
    let problem = RwSignal::new(None::<String>);
    let members = RwSignal::new(Vec::<Member>::new());
    let links = RwSignal::new(Vec::<ShareLink>::new());
    let new_link = RwSignal::new(None::<String>);
    let report = move |ApiFailure(e): ApiFailure| problem.set(Some(e.message));
    let reload = move || {
        spawn_local(async move {
            match api::members(project_id).await {
                Ok(list) => members.set(list),
                Err(e) => report(e),
            }
            match api::share_links(run_id).await {
                Ok(list) => links.set(list),
                Err(e) => report(e),
            }
        })
    };
    let user = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_owned());
    let add_member = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        problem.set(None);
        let name = user.get().trim().to_owned();
        let Ok(role) = serde_json::from_value::<Role>(serde_json::Value::String(role.get())) else {
            return;
        };
        spawn_local(async move {
            match api::set_member(project_id, &name, role).await {
                Ok(list) => {
                    members.set(list);
                    user.set(String::new());
                }
                Err(e) => report(e),
            }
        });
    };
    let remove = move |name: String| {
        problem.set(None);
        spawn_local(async move {
            match api::remove_member(project_id, &name).await {
                Ok(()) => members.update(|list| list.retain(|m| m.user != name)),
                Err(e) => report(e),
            }
        });
    };
    let make_link = move |_| {
        problem.set(None);
        spawn_local(async move {
            match api::share_run(run_id).await {
                Ok(secret) => {
                    let origin = (web_sys::window().expect("a browser window").location())
                        .origin()
                        .unwrap_or_default();
                    new_link.set(Some(format!(
                        "{origin}/runs/{run_id}?share={}",
                        secret.token
                    )));
                    reload();
                }
                Err(e) => report(e),
            }
        });
    };
    let revoke = move |link: i64| {
        problem.set(None);
        spawn_local(async move {
            match api::revoke_share_link(run_id, link).await {
                Ok(()) => reload(),
                Err(e) => report(e),
            }
        });
    };
    // Owners cannot remove themselves (the server refuses): no button for oneself.
    let me = LocalResource::new(api::me);
    let my_name = move || me.get().and_then(Result::ok).map(|m| m.user.name);
    let member_rows = move || {
        let my_name = my_name();
        (members.get().into_iter())
            .map(|m| {
                let removable = my_name.as_deref() != Some(m.user.as_str());
                let name = m.user.clone();
                let label = format!("remove {}", m.user);
                view! {
                    <li>
                        <span class="member">{m.user.clone()}</span>
                        <span class="tag">{api::snake(m.role)}</span>
                        <Show when=move || removable>
                            <button type="button" class="link-button" aria-label=label.clone()
                                on:click={
                                    let name = name.clone();
                                    move |_| remove(name.clone())
                                }>"Remove"</button>
                        </Show>
                    </li>
                }
            })
            .collect_view()
    };
    let link_rows = move || {
        (links.get().into_iter())
            .map(|l| {
                let state = if l.revoked { "revoked" } else { "active" };
                view! {
                    <li class=format!("share-{state}")>
                        {format!("link {} by {}, {} ({state})", l.id, l.created_by, l.created_at)}
                        <Show when=move || !l.revoked>
                            <button type="button" class="link-button revoke-link"
                                on:click=move |_| revoke(l.id)>"Revoke"</button>
                        </Show>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <details class="share-dialog" on:toggle=move |_| reload()>
            <summary id="share-run">"Share"</summary>
            <h3>"Team: this run's project"</h3>
            <p class="hint">"Viewers read every run of the project; editors also start, tag and cancel runs; owners manage members."</p>
            <ul class="members">{member_rows}</ul>
            <form class="inline-form" on:submit=add_member>
                <label>
                    <span>"User"</span>
                    <input id="member-name" required prop:value=move || user.get()
                        on:input=move |ev| user.set(event_target_value(&ev)) />
                </label>
                <label>
                    <span>"Role"</span>
                    <select id="member-role" prop:value=move || role.get()
                        on:change=move |ev| role.set(event_target_value(&ev))>
                        <option value="viewer">"viewer"</option>
                        <option value="editor">"editor"</option>
                        <option value="owner">"owner"</option>
                    </select>
                </label>
                <button type="submit">"Give access"</button>
            </form>
            <h3>"Read-only link to this run"</h3>
            <button type="button" id="make-share-link" on:click=make_link>"Make a link"</button>
            {move || new_link.get().map(|link| view! {
                <p class="share-link">
                    "Anyone with this link sees this run (and nothing else) until it is revoked. "
                    "It is shown only now: "
                    <input id="share-link" readonly value=link size="60" />
                </p>
            })}
            <ul class="share-links">{link_rows}</ul>
            {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
        </details>
    }
}
