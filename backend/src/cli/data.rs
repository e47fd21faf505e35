//! `balancelab prepare` (raw downloads to the loaders' layouts) and `balancelab datasets`.

use std::path::Path;

use anyhow::bail;

#[derive(Clone, Copy, clap::ValueEnum)]
/// The datasets `prepare` knows.
pub enum PrepareDataset {
    /// CREMA-D.
    CremaD,
    /// AVE.
    Ave,
    /// UCF101.
    Ucf101,
}

/// Checks and extracts a raw download (`balancelab prepare`).
pub fn prepare(dataset: PrepareDataset, src: &Path, fps: Option<u32>) -> anyhow::Result<()> {
    use balancelab::data::prepare::{prepare, PrepareKind};
    let kind = match dataset {
        PrepareDataset::CremaD => PrepareKind::CremaD,
        PrepareDataset::Ave => PrepareKind::Ave,
        PrepareDataset::Ucf101 => PrepareKind::Ucf101,
    };
    if fps == Some(0) {
        bail!("--fps must be at least 1");
    }
    if !src.is_dir() {
        bail!("--src {} is not a folder", src.display());
    }
    let summary = prepare(kind, src, fps, &|problem| {
        eprintln!("problem: {}: {}", problem.path.display(), problem.message);
    })?;
    println!(
        "{} clips: {} usable, {} with problems ({} problems in all); {} extractions this run; manifest: {}",
        summary.clips,
        summary.usable,
        summary.clips - summary.usable,
        summary.problems,
        summary.extracted,
        summary.manifest.display()
    );
    Ok(())
}

/// Prints every dataset, whether it was found in `data_dir`, its source and license.
pub fn list(data_dir: Option<&Path>) {
    for d in balancelab::data::catalog(data_dir) {
        let found = if d.available { "found" } else { "not found" };
        println!("{} ({}): {found}", d.kind, d.name);
        println!("    modalities: {}", d.modalities);
        println!("    source: {}; license: {}", d.source, d.license);
    }
}
