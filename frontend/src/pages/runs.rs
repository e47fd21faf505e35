//! The run list: filter, search, sort and page through runs, each setting kept in the URL
//! (a reload or a shared link shows the same view); statuses and progress update live.

use std::collections::HashMap;

use balancelab_shared::{
    MethodConfig, MethodKind, Role, Run, RunPage, RunPatch, RunQuery, RunSort, RunStatus, SortOrder,
};
use futures::channel::oneshot;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::params::ParamsMap;

use super::{
    duration_text, in_place, method_and_settings, run_notes, url_with, ProjectOptions, StatusBadge,
};
use crate::api::{self, snake, ApiFailure, LiveStream};

/// Runs per page of the list.
const PAGE_SIZE: u32 = 25;

/// The method filter's options, (value, label): one per method name the server filters by
/// ([`MethodConfig::name`]), so OGM-GE and OGM share one.
fn method_filter_options() -> Vec<(&'static str, String)> {
    let mut options: Vec<(&'static str, String)> = Vec::new();
    for kind in MethodKind::ALL {
        let name = MethodConfig::from(kind).name();
        match options.iter_mut().find(|(value, _)| *value == name) {
            Some((_, label)) => *label = format!("{label} / {}", kind.label()),
            None => options.push((name, kind.label().to_owned())),
        }
    }
    options
}

/// The list's query as the URL states it; unknown values fall back to the defaults.
fn query_from(params: &ParamsMap) -> RunQuery {
    let text = |key: &str| params.get(key).filter(|v| !v.is_empty());
    fn named<T: serde::de::DeserializeOwned>(value: Option<String>) -> Option<T> {
        serde_json::from_value(serde_json::Value::String(value?)).ok()
    }
    let page: u32 = text("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    RunQuery {
        project: text("project").and_then(|p| p.parse().ok()),
        status: named(text("status")),
        method: text("method"),
        tag: text("tag"),
        search: text("search"),
        sort: named(text("sort")).unwrap_or_default(),
        order: named(text("order")).unwrap_or_default(),
        limit: PAGE_SIZE,
        offset: page * PAGE_SIZE,
        ..RunQuery::default()
    }
}

/// The run list, its settings in the URL, updated live.
#[component]
pub(super) fn RunList() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| query_from(&params.read()));
    // Bumped when a run appears that the shown page may now include.
    let refresh = RwSignal::new(0u32);
    let page = LocalResource::new(move || {
        let query = query.get();
        refresh.track();
        async move { api::list_runs(&query).await }
    });
    // Live changes by run id, laid over the fetched page.
    let live = RwSignal::new(HashMap::<i64, Run>::new());
    let selected = RwSignal::new(Vec::<i64>::new());
    let problem = RwSignal::new(None::<String>);
    follow_changes(live, refresh, problem);
    view! {
        <RunFilters />
        {move || problem.get().map(|p| view! { <p class="form-message" role="alert">{p}</p> })}
        <SelectionBar selected refresh />
        <Suspense fallback=|| view! { <p>"Loading runs..."</p> }>
            {move || page.get().map(|result| match result {
                Ok(RunPage { runs, .. }) if runs.is_empty() => {
                    let q = query.get_untracked();
                    let filtered = q.status.is_some() || q.method.is_some() || q.tag.is_some()
                        || q.search.is_some() || q.offset > 0;
                    let text = if filtered {
                        "No runs match these filters."
                    } else {
                        "No runs yet: configure one above and start it."
                    };
                    view! { <p class="hint" id="no-runs">{text}</p> }.into_any()
                }
                Ok(RunPage { runs, total }) => {
                    view! { <RunTable runs total query live selected /> }.into_any()
                }
                Err(ApiFailure(e)) => view! { <p class="form-message">{e.message}</p> }.into_any(),
            })}
        </Suspense>
    }
}

/// How the list's settings change: the URL is rewritten, and the list goes back to its first
/// page unless the page itself is what changes.
fn query_setter() -> impl Fn(Vec<(&'static str, String)>) + Clone + 'static {
    let params = use_query_map();
    let navigate = use_navigate();
    move |mut changes: Vec<(&'static str, String)>| {
        if !changes.iter().any(|(key, _)| *key == "page") {
            changes.push(("page", String::new()));
        }
        navigate(&url_with("/", params.get_untracked(), &changes), in_place());
    }
}

/// The list's search and filters: text, project, status and method.
#[component]
fn RunFilters() -> impl IntoView {
    let params = use_query_map();
    let set = query_setter();
    view! {
        <div class="run-filters" role="search">
            <label>
                <span>"Search notes and tags"</span>
                <input id="runs-search" type="search"
                    prop:value=move || params.read().get("search").unwrap_or_default()
                    on:change=move |ev| set(vec![("search", event_target_value(&ev))]) />
            </label>
            <FilterSelect id="runs-project" label="Project" key="project" any="all of mine">
                <ProjectOptions at_least=Role::Viewer />
            </FilterSelect>
            <FilterSelect id="runs-status" label="Status" key="status" any="any">
                {RunStatus::ALL.map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> })}
            </FilterSelect>
            <FilterSelect id="runs-method" label="Method" key="method" any="any">
                {method_filter_options().into_iter().map(|(value, label)| view! { <option value=value>{label}</option> }).collect_view()}
            </FilterSelect>
        </div>
    }
}

/// One filter of the list: a select of `children` options after "`any`" (no filter), bound
/// to the URL's query parameter `key`.
#[component]
fn FilterSelect(
    id: &'static str,
    label: &'static str,
    key: &'static str,
    any: &'static str,
    children: Children,
) -> impl IntoView {
    let params = use_query_map();
    let set = query_setter();
    view! {
        <label>
            <span>{label}</span>
            <select id=id prop:value=move || params.read().get(key).unwrap_or_default()
                on:change=move |ev| set(vec![(key, event_target_value(&ev))])>
                <option value="">{any}</option>
                {children()}
            </select>
        </label>
    }
}

/// One page of runs, each row updated live, with the buttons to the pages before and after.
#[component]
fn RunTable(
    runs: Vec<Run>,
    /// Runs that match, over every page.
    total: u64,
    query: Memo<RunQuery>,
    live: RwSignal<HashMap<i64, Run>>,
    selected: RwSignal<Vec<i64>>,
) -> impl IntoView {
    let rows = (runs.into_iter())
        .map(|run| {
            let id = run.id;
            let run = Signal::derive(move || {
                live.with(|l| l.get(&id).cloned())
                    .unwrap_or_else(|| run.clone())
            });
            view! { <RunRow run selected /> }
        })
        .collect_view();
    let q = query.get_untracked();
    let first = q.offset + 1;
    let last = (q.offset as u64 + PAGE_SIZE as u64).min(total);
    let page_number = q.offset / PAGE_SIZE;
    let set_page = query_setter();
    let previous = {
        let set_page = set_page.clone();
        move |_: leptos::ev::MouseEvent| set_page(vec![("page", (page_number - 1).to_string())])
    };
    let next =
        move |_: leptos::ev::MouseEvent| set_page(vec![("page", (page_number + 1).to_string())]);
    view! {
        <table class="runs">
            <thead>
                <tr>
                    <th><span class="visually-hidden">"Compare"</span></th>
                    <SortHeader label="Run" column=RunSort::Id query />
                    <SortHeader label="Method" column=RunSort::Method query />
                    <SortHeader label="Data: modalities" column=RunSort::Dataset query />
                    <th>"Progress"</th>
                    <SortHeader label="Best val. acc." column=RunSort::BestAccuracy query />
                    <SortHeader label="Status" column=RunSort::Status query />
                    <th>"Tags"</th>
                    <th>"Created (UTC)"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <nav class="pages" aria-label="run pages">
            <button type="button" id="runs-previous" disabled={page_number == 0} on:click=previous>
                "Previous"
            </button>
            <span>{format!("runs {first}-{last} of {total}")}</span>
            <button type="button" id="runs-next" disabled={last >= total} on:click=next>
                "Next"
            </button>
        </nav>
    }
}

/// A column's header: a button that sorts the list by the column, descending first, then
/// the other way.
#[component]
fn SortHeader(label: &'static str, column: RunSort, query: Memo<RunQuery>) -> impl IntoView {
    let set = query_setter();
    let sort_by = move |_| {
        let current = query.get_untracked();
        let order = if current.sort == column && current.order == SortOrder::Desc {
            SortOrder::Asc
        } else {
            SortOrder::Desc
        };
        set(vec![("sort", snake(column)), ("order", snake(order))]);
    };
    // This column's order, if the list is sorted by it.
    let order = move || {
        let q = query.get();
        (q.sort == column).then_some(q.order)
    };
    let arrow = move || match order() {
        None => "",
        Some(SortOrder::Asc) => " \u{25B2}",
        Some(SortOrder::Desc) => " \u{25BC}",
    };
    let aria = move || match order() {
        None => "none",
        Some(SortOrder::Asc) => "ascending",
        Some(SortOrder::Desc) => "descending",
    };
    view! {
        <th aria-sort=aria>
            <button type="button" class="sort" on:click=sort_by>
                {label}{arrow}
            </button>
        </th>
    }
}

/// What can be done with the ticked runs: tag them, take a tag off, delete them (after a
/// confirmation), and compare them once two or more are ticked. `refresh` reloads the list.
#[component]
fn SelectionBar(selected: RwSignal<Vec<i64>>, refresh: RwSignal<u32>) -> impl IntoView {
    let compare_href = move || {
        let mut ids = selected.get();
        ids.sort_unstable();
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("/compare?runs={}", ids.join(","))
    };
    let count = move || selected.with(Vec::len);
    let tag = RwSignal::new(String::new());
    let status = RwSignal::new(None::<(bool, String)>);
    let busy = RwSignal::new(false);
    // Runs `change` to every ticked run, one after the other, and says how it went.
    let apply = move |done: &'static str, change: BulkChange| {
        let ids = selected.get_untracked();
        let tags = run_notes::parse_tags(&tag.get_untracked());
        if !matches!(change, BulkChange::Delete) && tags.is_empty() {
            return status.set(Some((false, "Type a tag first.".into())));
        }
        if let BulkChange::Delete = change {
            let window = web_sys::window().expect("a browser window");
            let asked = format!(
                "Delete {} run(s)? Their metrics, checkpoints and share links go with them; this cannot be undone.",
                ids.len()
            );
            if !window.confirm_with_message(&asked).unwrap_or(false) {
                return;
            }
        }
        busy.set(true);
        status.set(None);
        spawn_local(async move {
            let mut failures = Vec::new();
            for &id in &ids {
                if let Err(ApiFailure(e)) = change.apply(id, &tags).await {
                    failures.push(format!("#{id}: {}", e.message));
                }
            }
            if let BulkChange::Delete = change {
                selected.update(|s| s.retain(|id| !ids.contains(id)));
            }
            let count = ids.len() - failures.len();
            status.set(Some(if failures.is_empty() {
                (true, format!("{count} run(s) {done}."))
            } else {
                (
                    false,
                    format!("{count} run(s) {done}; not: {}", failures.join("; ")),
                )
            }));
            refresh.update(|n| *n += 1);
            busy.set(false);
        });
    };
    view! {
        <div class="selection-bar">
            <Show
                when=move || { count() >= 1 }
                fallback=|| view! { <span class="hint">"Tick runs to tag, delete or compare them (two or more)."</span> }
            >
                <span>{move || format!("{} ticked:", count())}</span>
                <Show when=move || { count() >= 2 }>
                    <A href=compare_href attr:id="compare-selected">{move || format!("Compare {} runs", count())}</A>
                </Show>
                <input id="bulk-tag" aria-label="tag for the ticked runs" placeholder="tag"
                    prop:value=move || tag.get() on:input=move |ev| tag.set(event_target_value(&ev)) />
                <button type="button" id="bulk-add-tag" disabled=move || busy.get()
                    on:click=move |_| apply("tagged", BulkChange::AddTags)>"Add tag"</button>
                <button type="button" id="bulk-remove-tag" disabled=move || busy.get()
                    on:click=move |_| apply("untagged", BulkChange::RemoveTags)>"Remove tag"</button>
                <button type="button" id="bulk-delete" class="danger" disabled=move || busy.get()
                    on:click=move |_| apply("deleted", BulkChange::Delete)>"Delete"</button>
            </Show>
            {move || status.get().map(|(ok, text)| {
                let class = if ok { "hint" } else { "form-message" };
                view! { <span class=class role="status" id="bulk-status">{text}</span> }
            })}
        </div>
    }
}

/// A change made to each ticked run.
#[derive(Clone, Copy)]
enum BulkChange {
    AddTags,
    RemoveTags,
    Delete,
}

impl BulkChange {
    /// Makes the change to run `id`: tags are read afresh, so that a teammate's tag added
    /// meanwhile stays.
    async fn apply(self, id: i64, tags: &[String]) -> Result<(), ApiFailure> {
        if let Self::Delete = self {
            return api::delete_run(id).await;
        }
        let current = api::get_run(id, None).await?.run.tags;
        let changed = match self {
            Self::AddTags => with_tags(current, tags),
            _ => current.into_iter().filter(|t| !tags.contains(t)).collect(),
        };
        let patch = RunPatch {
            tags: Some(changed),
            note: None,
        };
        if let Some(problems) = run_notes::patch_problems(&patch) {
            return Err(ApiFailure::message(problems));
        }
        api::change_run(id, &patch).await.map(|_| ())
    }
}

/// `current` with each of `added` not in it yet appended.
fn with_tags(mut current: Vec<String>, added: &[String]) -> Vec<String> {
    for tag in added {
        if !current.contains(tag) {
            current.push(tag.clone());
        }
    }
    current
}

/// One run of the list, with its tick box for comparing.
#[component]
fn RunRow(run: Signal<Run>, selected: RwSignal<Vec<i64>>) -> impl IntoView {
    let id = run.with_untracked(|r| r.id);
    let toggle = move |ev| {
        let checked = event_target_checked(&ev);
        selected.update(|ids| {
            ids.retain(|i| *i != id);
            if checked {
                ids.push(id);
            }
        });
    };
    let progress = move || run.with(|r| format!("{}/{}", r.epochs_done, r.config.epochs));
    let eta = move || {
        let eta = run.with(Run::eta_seconds)?;
        Some(view! { <small class="secondary">{format!("{} left", duration_text(eta))}</small> })
    };
    // The store keeps the best validation epoch's (the best test epoch's without one).
    let best = move || {
        run.with(|r| {
            let split = match r.config.validation_fraction > 0.0 {
                true => "",
                false => " (test)",
            };
            r.best_accuracy
                .map_or(String::new(), |a| format!("{:.1}%{split}", 100.0 * a))
        })
    };
    // Each head's accuracy at the best epoch, by modality name.
    let heads = move || {
        run.with(|r| {
            let names = r.config.dataset.modality_names();
            (r.best_unimodal.iter().zip(names))
                .map(|(a, name)| format!("{}: {:.1}%", short_name(&name), 100.0 * a))
                .collect::<Vec<_>>()
                .join(" · ")
        })
    };
    view! {
        <tr>
            <td>
                <input type="checkbox" class="select-run" aria-label=format!("compare run {id}")
                    prop:checked=move || selected.with(|ids| ids.contains(&id)) on:change=toggle />
            </td>
            <td>
                <A href=format!("/runs/{id}")>{format!("#{id}")}</A>
                {move || run.with(|r| (!r.note.is_empty()).then(|| {
                    view! { <small class="note" title=r.note.clone()>{r.note.clone()}</small> }
                }))}
            </td>
            <td>
                {move || run.with(|r| method_and_settings(&r.config.method))}
                <small class="secondary">{move || run.with(|r| format!("{} fusion, lr {}", r.config.model.fusion.name(), r.config.learning_rate))}</small>
            </td>
            <td>{move || run.with(|r| format!("{}: {}", r.config.dataset.kind(), r.config.dataset.modality_names().join(", ")))}</td>
            <td class="num">{progress}{eta}</td>
            <td class="num">{best}<small class="secondary">{heads}</small></td>
            <td>{move || view! { <StatusBadge status=run.with(|r| r.status) /> }}</td>
            <td class="tags-cell" title=move || run.with(|r| r.tags.join(", "))>
                {move || run.with(|r| r.tags.iter().map(|t| view! { <span class="tag">{t.clone()}</span> }).collect_view())}
            </td>
            <td>{run.with_untracked(|r| r.created_at.replace('T', " ").trim_end_matches('Z').to_owned())}</td>
        </tr>
    }
}

/// "m1 (noise 3)" -> "m1": the list has no room for the noise.
fn short_name(name: &str) -> &str {
    name.split(" (").next().unwrap_or(name)
}

/// Applies the server's run-list events until the list leaves the page: known runs are
/// updated in place; a run not seen before asks for the page again. What goes wrong with the
/// stream is told in `problem`.
fn follow_changes(
    live: RwSignal<HashMap<i64, Run>>,
    refresh: RwSignal<u32>,
    problem: RwSignal<Option<String>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    on_cleanup(move || {
        let _ = stop.send(());
    });
    spawn_local(async move {
        let follow = async move {
            let mut stream = match LiveStream::<Run>::open("/api/runs/events") {
                Ok(stream) => stream,
                Err(e) => return problem.set(Some(format!("Live updates unavailable: {e}"))),
            };
            let report = |message| problem.set(Some(message));
            while let Some(run) = stream.next_or_report(report, "reload to see changes").await {
                let new = live.with_untracked(|l| !l.contains_key(&run.id));
                live.update(|l| {
                    l.insert(run.id, run);
                });
                if new {
                    refresh.update(|n| *n += 1);
                }
            }
        };
        futures::pin_mut!(follow);
        futures::future::select(follow, stopped).await;
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_method_filter_has_one_option_per_method_name() {
        let options = super::method_filter_options();
        let values: Vec<&str> = options.iter().map(|(value, _)| *value).collect();
        assert_eq!(
            values,
            [
                "unimodal",
                "joint",
                "multi_loss",
                "mlb",
                "ogm",
                "agm",
                "mslr",
                "mm_cosine",
                "pmr"
            ]
        );
        assert_eq!(options[4].1, "OGM-GE / OGM");
    }
}
