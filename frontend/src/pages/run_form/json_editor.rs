//! The JSON editor of every setting, for what the form's fields do not show.

use balancelab_shared::{FieldError, RunConfig};
use leptos::prelude::*;

use super::fields::FormFields;

/// Every setting of the engine as JSON: opened, it shows what the form would send; applied,
/// the form takes it (fields it does not show included).
#[component]
pub(super) fn AllSettings(
    fields: FormFields,
    errors: RwSignal<Vec<FieldError>>,
    message: RwSignal<Option<String>>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let refresh = move || {
        let config = fields.to_config().unwrap_or_else(|_| fields.loaded.get());
        text.set(serde_json::to_string_pretty(&config).expect("a RunConfig serializes"));
    };
    let apply = move |_| {
        let json = text.get();
        let mut deserializer = serde_json::Deserializer::from_str(&json);
        match serde_path_to_error::deserialize::<_, RunConfig>(&mut deserializer) {
            Ok(config) => {
                fields.load(config);
                errors.set(Vec::new());
                message.set(None);
            }
            Err(e) => {
                let field = e.path().to_string();
                errors.set(vec![FieldError::new(field, e.into_inner().to_string())]);
                message.set(Some("The settings are not a valid configuration.".into()));
            }
        }
    };
    view! {
        <details class="all-settings wide" on:toggle=move |_| refresh()>
            <summary>"All settings (JSON): encoder, optimiser, schedule, method details..."</summary>
            <textarea id="all-settings" rows="18" spellcheck="false" aria-label="all settings as JSON"
                prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
            <button type="button" id="apply-settings" on:click=apply>"Use these settings"</button>
        </details>
    }
}
