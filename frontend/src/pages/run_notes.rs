//! A run's tags and note: read by everyone who sees the run, edited by its project's editors.
//! Also how the run list's bulk tagging reads what a person typed.

use balancelab_shared::{Run, RunPatch};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, ApiFailure};

/// Tags as a person types them: separated by commas or spaces, each once, in order.
pub(super) fn parse_tags(text: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for tag in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    tags
}

/// The change's problems in words, one line per field; none if the server would accept it.
pub(super) fn patch_problems(patch: &RunPatch) -> Option<String> {
    let errors = patch.validate().err()?;
    let lines: Vec<String> = (errors.iter())
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    Some(lines.join("; "))
}

/// The run's tags and note; a form that changes them when `editable`.
#[component]
pub(super) fn RunNotes(run: RwSignal<Option<Run>>, editable: Signal<bool>) -> impl IntoView {
    let tags = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    // Filled from the run once it has loaded (and again after each save).
    Effect::new(move |_| {
        run.with(|r| {
            if let Some(r) = r {
                tags.set(r.tags.join(", "));
                note.set(r.note.clone());
            }
        })
    });
    let status = RwSignal::new(None::<(bool, String)>);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(id) = run.with_untracked(|r| r.as_ref().map(|r| r.id)) else {
            return;
        };
        let patch = RunPatch {
            tags: Some(parse_tags(&tags.get_untracked())),
            note: Some(note.get_untracked()),
        };
        if let Some(problems) = patch_problems(&patch) {
            return status.set(Some((false, problems)));
        }
        status.set(None);
        spawn_local(async move {
            match api::change_run(id, &patch).await {
                Ok(changed) => {
                    run.update(|r| {
                        if let Some(r) = r {
                            r.tags = changed.tags;
                            r.note = changed.note;
                        }
                    });
                    status.set(Some((true, "Saved.".into())));
                }
                Err(ApiFailure(e)) => status.set(Some((false, e.message))),
            }
        });
    };
    let read_only = move || {
        run.get().map(|r| {
            let tags = (r.tags.iter())
                .map(|t| view! { <span class="tag">{t.clone()}</span> })
                .collect_view();
            let note = if r.note.is_empty() {
                "No note.".to_owned()
            } else {
                r.note
            };
            view! {
                <p class="run-tags">{tags}</p>
                <p class="run-note">{note}</p>
            }
        })
    };
    view! {
        <section class="card">
            <h2>"Tags and note"</h2>
            <Show when=move || editable.get() fallback=read_only>
                <form class="notes-form" on:submit=save>
                    <label class="field">
                        <span>"Tags (separated by commas or spaces)"</span>
                        <input id="run-tags" prop:value=move || tags.get()
                            on:input=move |ev| tags.set(event_target_value(&ev)) />
                    </label>
                    <label class="field">
                        <span>"Note"</span>
                        <textarea id="run-note" rows="4" prop:value=move || note.get()
                            on:input=move |ev| note.set(event_target_value(&ev))></textarea>
                    </label>
                    <button type="submit" id="save-notes">"Save tags and note"</button>
                    {move || status.get().map(|(ok, text)| {
                        let class = if ok { "hint" } else { "form-message" };
                        view! { <span class=class role="status" id="notes-status">{text}</span> }
                    })}
                </form>
            </Show>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_as_typed_each_once() {
        assert_eq!(
            parse_tags(" ablation, seed-sweep  ablation,,paper:table2 "),
            ["ablation", "seed-sweep", "paper:table2"]
        );
        assert!(parse_tags(" , ").is_empty());
    }

    #[test]
    fn a_change_the_server_would_refuse_is_told_by_field() {
        let patch = RunPatch {
            tags: Some(parse_tags("ok bad<tag>")),
            note: None,
        };
        let problems = patch_problems(&patch).expect("a tag with < is refused");
        assert!(problems.starts_with("tags[1]: "), "{problems}");
        assert_eq!(patch_problems(&RunPatch::default()), None);
    }
}
