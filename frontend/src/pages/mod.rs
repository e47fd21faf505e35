//! The app's pages, one per route.

mod compare;
mod home;
mod login;
mod run;
mod runs;
mod step_curves;

pub use compare::ComparePage;
pub use home::HomePage;
pub use login::{LoginPage, UserMenu};
pub use run::RunPage;

use balancelab_shared::{MethodConfig, RunStatus};
use leptos::prelude::*;

/// "MLB (alpha 0.8)", "OGM-GE (alpha 0.8)", "joint", ...
pub fn method_label(method: &MethodConfig) -> String {
    match method {
        MethodConfig::Joint => "joint".into(),
        MethodConfig::MultiLoss(_) => "multi-loss".into(),
        MethodConfig::Mlb(mlb) => match mlb.beta {
            Some(beta) => format!("MLB (alpha {}, beta {beta})", mlb.alpha),
            None => format!("MLB (alpha {})", mlb.alpha),
        },
        MethodConfig::Ogm(ogm) if ogm.generalization_enhancement => {
            format!("OGM-GE (alpha {})", ogm.alpha)
        }
        MethodConfig::Ogm(ogm) => format!("OGM (alpha {})", ogm.alpha),
        MethodConfig::Agm(agm) => format!("AGM (alpha {})", agm.alpha),
        MethodConfig::Mslr(_) => "MSLR".into(),
        MethodConfig::MmCosine(cos) => format!("MMCosine (scale {})", cos.scale),
        MethodConfig::Pmr(pmr) => format!("PMR (alpha {})", pmr.alpha),
    }
}

#[component]
pub fn StatusBadge(status: RunStatus) -> impl IntoView {
    view! { <span class=format!("badge badge-{}", status.as_str())>{status.as_str()}</span> }
}
