//! Sharing a run: teammates get a role in its project (viewer, editor, owner); anyone else
//! gets a read-only link to this run alone, which can be revoked. Owners also see the
//! project's recent activity: the audit log of who did what.

use balancelab_shared::{AuditEntry, Member, Role, ShareLink};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::wasm_bindgen::JsCast;

use crate::api::{self, ApiFailure};

/// The "Share" dialog of run `run_id`, of project `project_id`.
#[component]
pub(super) fn ShareDialog(run_id: i64, project_id: i64) -> impl IntoView {
    let sharing = Sharing::new(Some(run_id), project_id);
    view! {
        <details class="share-dialog" on:toggle=move |_| sharing.reload()>
            <summary id="share-run">"Share"</summary>
            <TeamAccess sharing heading="Team: this run's project" />
            <ReadOnlyLinks sharing />
            <ProjectActivity sharing />
            {move || sharing.problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
        </details>
    }
}

/// The members of project `project_id` and the form that gives a user a role in it: the
/// projects page's team section.
#[component]
pub(super) fn ProjectTeam(project_id: i64) -> impl IntoView {
    let sharing = Sharing::new(None, project_id);
    sharing.reload();
    view! {
        <TeamAccess sharing heading="Members" />
        <ProjectActivity sharing />
        {move || sharing.problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
    }
}

/// Who a run (or, without `run_id`, a project) is shared with: the project's members and the
/// run's links, as last read, and what went wrong last.
#[derive(Clone, Copy)]
struct Sharing {
    run_id: Option<i64>,
    project_id: i64,
    members: RwSignal<Vec<Member>>,
    links: RwSignal<Vec<ShareLink>>,
    /// The link just made; shown once, as its token cannot be read again.
    new_link: RwSignal<Option<String>>,
    /// The project's latest audit entries; none for a caller who is not an owner.
    activity: RwSignal<Option<Vec<AuditEntry>>>,
    problem: RwSignal<Option<String>>,
}

impl Sharing {
    fn new(run_id: Option<i64>, project_id: i64) -> Self {
        Self {
            run_id,
            project_id,
            members: RwSignal::new(Vec::new()),
            links: RwSignal::new(Vec::new()),
            new_link: RwSignal::new(None),
            activity: RwSignal::new(None),
            problem: RwSignal::new(None),
        }
    }

    /// Shows what went wrong.
    fn report(self, ApiFailure(e): ApiFailure) {
        self.problem.set(Some(e.message));
    }

    /// Reads the members and the links again.
    fn reload(self) {
        spawn_local(async move {
            match api::members(self.project_id).await {
                Ok(list) => self.members.set(list),
                Err(e) => self.report(e),
            }
            if let Some(run_id) = self.run_id {
                match api::share_links(run_id).await {
                    Ok(list) => self.links.set(list),
                    Err(e) => self.report(e),
                }
            }
            // Owners only: anyone else is refused, and sees no such section.
            self.activity.set(
                api::project_audit(self.project_id, ACTIVITY_SHOWN)
                    .await
                    .ok(),
            );
        })
    }

    /// Gives user `name` `role` in the project; whether that was done.
    async fn set_member(self, name: String, role: Role) -> bool {
        match api::set_member(self.project_id, &name, role).await {
            Ok(list) => {
                self.members.set(list);
                true
            }
            Err(e) => {
                self.report(e);
                false
            }
        }
    }

    /// Takes user `name` out of the project.
    fn remove_member(self, name: String) {
        self.problem.set(None);
        spawn_local(async move {
            match api::remove_member(self.project_id, &name).await {
                Ok(()) => self.members.update(|list| list.retain(|m| m.user != name)),
                Err(e) => self.report(e),
            }
        });
    }

    /// Makes a new read-only link to the run.
    fn make_link(self) {
        self.problem.set(None);
        let Some(run_id) = self.run_id else {
            return;
        };
        spawn_local(async move {
            match api::share_run(run_id).await {
                Ok(secret) => {
                    let origin = (web_sys::window().expect("a browser window").location())
                        .origin()
                        .unwrap_or_default();
                    self.new_link.set(Some(format!(
                        "{origin}/runs/{run_id}?share={}",
                        secret.token
                    )));
                    self.reload();
                }
                Err(e) => self.report(e),
            }
        });
    }

    /// Revokes link `link`: it opens nothing any more.
    fn revoke(self, link: i64) {
        self.problem.set(None);
        let Some(run_id) = self.run_id else {
            return;
        };
        spawn_local(async move {
            match api::revoke_share_link(run_id, link).await {
                Ok(()) => self.reload(),
                Err(e) => self.report(e),
            }
        });
    }
}

/// The project's members, and the form that gives a user a role in it.
#[component]
fn TeamAccess(sharing: Sharing, heading: &'static str) -> impl IntoView {
    let user = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_owned());
    let add_member = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        sharing.problem.set(None);
        let name = user.get().trim().to_owned();
        // Every option is a role's name.
        let Some(role) = Role::parse(&role.get()) else {
            return;
        };
        spawn_local(async move {
            if sharing.set_member(name, role).await {
                user.set(String::new());
            }
        });
    };
    view! {
        <h3>{heading}</h3>
        <p class="hint">"Viewers read every run of the project; editors also start, tag and cancel runs; owners manage members."</p>
        <MemberList sharing />
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
    }
}

/// The project's members with their roles, each removable but oneself.
#[component]
fn MemberList(sharing: Sharing) -> impl IntoView {
    // Owners cannot remove themselves (the server refuses): no button for oneself.
    let me = LocalResource::new(api::me);
    let my_name = move || me.get().and_then(Result::ok).map(|m| m.user.name);
    let rows = move || {
        let my_name = my_name();
        (sharing.members.get().into_iter())
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
                                    move |_| sharing.remove_member(name.clone())
                                }>"Remove"</button>
                        </Show>
                    </li>
                }
            })
            .collect_view()
    };
    view! { <ul class="members">{rows}</ul> }
}

/// Audit entries the activity section shows: the latest.
const ACTIVITY_SHOWN: u32 = 20;

/// The project's latest audit entries, newest first, for its owners: when, who, what.
#[component]
fn ProjectActivity(sharing: Sharing) -> impl IntoView {
    move || {
        sharing.activity.get().map(|entries| {
            let rows = (entries.into_iter())
                .map(|e| {
                    let when = js_sys::Date::new(&(e.at_ms as f64).into());
                    let when = String::from(when.to_locale_string("default", &js_sys::Object::new()));
                    let run = e.run_id.map(|id| format!(" run {id}")).unwrap_or_default();
                    view! {
                        <li>
                            <span class="audit-when">{when}</span>
                            <span class="member">{e.actor}</span>
                            <span class="tag">{api::snake(e.action).replace('_', " ")}</span>
                            {format!("{run} {}", e.detail)}
                        </li>
                    }
                })
                .collect_view();
            view! {
                <h3>"Project activity (owners)"</h3>
                <p class="hint">"Who queued, changed, cancelled, deleted and shared runs, and changed members; newest first."</p>
                <ul class="audit-log">{rows}</ul>
            }
        })
    }
}

/// Copies `text` to the clipboard, saying whether it could (browsers allow it on HTTPS and
/// localhost only; elsewhere the text is to be copied by hand).
#[component]
fn CopyButton(text: String) -> impl IntoView {
    let said = RwSignal::new("Copy");
    let copy = move |_| {
        let text = text.clone();
        spawn_local(async move {
            // Absent outside secure contexts: calling it then would throw.
            let clipboard = web_sys::window()
                .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"clipboard".into()).ok())
                .filter(|c| !c.is_undefined() && !c.is_null())
                .map(|c| c.unchecked_into::<web_sys::Clipboard>());
            let copied = match clipboard {
                Some(clipboard) => {
                    let promise = clipboard.write_text(&text);
                    wasm_bindgen_futures::JsFuture::from(promise).await.is_ok()
                }
                None => false,
            };
            said.set(if copied {
                "Copied"
            } else {
                "Select and copy by hand"
            });
        });
    };
    view! {
        <button type="button" id="copy-share-link" on:click=copy>{move || said.get()}</button>
    }
}

/// The run's read-only links: the one just made, in full, and every link's state.
#[component]
fn ReadOnlyLinks(sharing: Sharing) -> impl IntoView {
    let rows = move || {
        (sharing.links.get().into_iter())
            .map(|l| {
                let state = if l.revoked { "revoked" } else { "active" };
                view! {
                    <li class=format!("share-{state}")>
                        {format!("link {} by {}, {} ({state})", l.id, l.created_by, l.created_at)}
                        <Show when=move || !l.revoked>
                            <button type="button" class="link-button revoke-link"
                                on:click=move |_| sharing.revoke(l.id)>"Revoke"</button>
                        </Show>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <h3>"Read-only link to this run"</h3>
        <button type="button" id="make-share-link" on:click=move |_| sharing.make_link()>"Make a link"</button>
        {move || sharing.new_link.get().map(|link| view! {
            <p class="share-link">
                "Anyone with this link sees this run (and nothing else) until it is revoked. "
                "It is shown only now:"
            </p>
            <p class="share-link">
                <input id="share-link" readonly value=link.clone() />
                <CopyButton text=link />
            </p>
        })}
        <ul class="share-links">{rows}</ul>
    }
}
