//! `/projects`: the caller's projects, a new one, and (owners) a project's name and members.
//! Also the start page's first step for someone in no project yet.

use balancelab_shared::{Project, Role};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::share_dialog::ProjectTeam;
use crate::api::{self, ApiFailure};

/// `/projects`: every project of the caller with their role, and a form for a new one.
#[component]
pub(crate) fn ProjectsPage() -> impl IntoView {
    // Bumped after a change, so the list is read again.
    let changed = RwSignal::new(0u32);
    let projects = LocalResource::new(move || {
        changed.track();
        api::list_projects()
    });
    let rows = move || {
        projects.get().map(|result| match result {
            Ok(list) if list.is_empty() => {
                view! { <p class="hint" id="no-projects">"You are in no project yet."</p> }
                    .into_any()
            }
            Ok(list) => (list.into_iter())
                .map(|project| view! { <ProjectCard project changed /> })
                .collect_view()
                .into_any(),
            Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
        })
    };
    view! {
        <section class="card">
            <h1>"Projects"</h1>
            <p class="hint">
                "A project holds runs and the people who may see them: viewers read its runs, "
                "editors also start, tag, cancel and delete them, owners manage its name and members."
            </p>
            <NewProject on_created=Callback::new(move |_| changed.update(|n| *n += 1)) />
        </section>
        <Suspense fallback=|| view! { <p>"Loading projects..."</p> }>{rows}</Suspense>
    }
}

/// A form that creates a project; `on_created` is told the new project.
#[component]
pub(super) fn NewProject(on_created: Callback<Project>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        problem.set(None);
        let wanted = name.get_untracked();
        spawn_local(async move {
            match api::create_project(&wanted).await {
                Ok(project) => {
                    name.set(String::new());
                    on_created.run(project);
                }
                Err(ApiFailure(e)) => problem.set(Some(e.message)),
            }
        });
    };
    view! {
        <form class="inline-form" on:submit=create>
            <label>
                <span>"New project"</span>
                <input id="new-project-name" required maxlength="100" placeholder="name"
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
            </label>
            <button type="submit" id="create-project">"Create project"</button>
            {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
        </form>
    }
}

/// One project: its name (renamed by owners), the caller's role, and for owners its members.
#[component]
fn ProjectCard(project: Project, changed: RwSignal<u32>) -> impl IntoView {
    let id = project.id;
    let owner = project.role == Role::Owner;
    let name = RwSignal::new(project.name.clone());
    let problem = RwSignal::new(None::<String>);
    let rename = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        problem.set(None);
        let wanted = name.get_untracked();
        spawn_local(async move {
            match api::rename_project(id, &wanted).await {
                Ok(_) => changed.update(|n| *n += 1),
                Err(ApiFailure(e)) => problem.set(Some(e.message)),
            }
        });
    };
    let runs = format!("/?project={id}");
    view! {
        <section class="card project" data-project=project.name.clone()>
            <h2>{project.name.clone()}" "<span class="tag">{api::snake(project.role)}</span></h2>
            <p><a href=runs>"Its runs"</a></p>
            <Show when=move || owner>
                <form class="inline-form" on:submit=rename>
                    <label>
                        <span>"Name"</span>
                        <input class="project-name" required maxlength="100"
                            prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                    </label>
                    <button type="submit" class="rename-project">"Rename"</button>
                </form>
                <ProjectTeam project_id=id />
            </Show>
            {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
        </section>
    }
}
