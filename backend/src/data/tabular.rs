//! Real tabular datasets read from the data directory, in their published formats:
//! UCI Multiple Features (`mfeat/mfeat-<view>.csv.gz`: a header row, then one sample per
//! row, label last; the same samples in the same order in every file) and scikit-learn's
//! digits (`digits/digits.csv.gz`: 64 pixel values 0..16 then the label, no header).

use std::fs::File;
use std::path::{Path, PathBuf};

use balancelab_shared::{MfeatView, SplitConfig};
use candle_core::{Device, Tensor};
use flate2::read::GzDecoder;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::DataError;
use crate::engine::{Dataset, Split};

/// Every sample of a dataset: `views[m]` is row-major `[n, dims[m]]`.
#[derive(Debug)]
pub struct Table {
    /// Each view's features, row-major `[n, dims[m]]`, not yet standardised.
    pub views: Vec<Vec<f32>>,
    /// Features per sample of each view.
    pub dims: Vec<usize>,
    /// Shape of one sample of each view (its `dims` entry is the product).
    pub shapes: Vec<Vec<usize>>,
    /// The class of each sample, from 0.
    pub labels: Vec<u32>,
}

/// Rows of a gzip'd CSV file of numbers, the label last.
fn read_rows(path: &Path, header: bool) -> Result<(Vec<Vec<f32>>, Vec<u32>), DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(header)
        .from_reader(GzDecoder::new(file));
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for record in reader.records() {
        let bad = |message: String| DataError::Format {
            path: path.to_owned(),
            message,
        };
        let record = record.map_err(|e| bad(e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut values = record
            .iter()
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("line {line}: {e}")))?;
        let label = values
            .pop()
            .filter(|l| l.fract() == 0.0 && *l >= 0.0)
            .ok_or_else(|| {
                bad(format!(
                    "line {line}: the last column must be a class label"
                ))
            })?;
        if rows
            .first()
            .is_some_and(|first: &Vec<f32>| first.len() != values.len())
        {
            return Err(bad(format!(
                "line {line}: {} features, expected {}",
                values.len(),
                rows[0].len()
            )));
        }
        rows.push(values);
        labels.push(label as u32);
    }
    if rows.is_empty() {
        return Err(DataError::Format {
            path: path.to_owned(),
            message: "no samples".into(),
        });
    }
    Ok((rows, labels))
}

/// The file of one mfeat view: `{root}/mfeat/mfeat-{view}.csv.gz`.
pub fn mfeat_path(root: &Path, view: MfeatView) -> PathBuf {
    root.join("mfeat")
        .join(format!("mfeat-{}.csv.gz", view.name()))
}

/// scikit-learn's digits: `{root}/digits/digits.csv.gz`.
pub fn digits_path(root: &Path) -> PathBuf {
    root.join("digits").join("digits.csv.gz")
}

/// Samples (handwritten numerals) in each file of UCI Multiple Features.
pub const MFEAT_SAMPLES: usize = 2000;
/// Samples in scikit-learn's copy of the optical digits.
pub const DIGITS_SAMPLES: usize = 1797;

/// The chosen mfeat views, checked to describe the same samples.
pub fn load_mfeat(root: &Path, views: &[MfeatView]) -> Result<Table, DataError> {
    let mut table = Table {
        views: Vec::new(),
        dims: Vec::new(),
        shapes: Vec::new(),
        labels: Vec::new(),
    };
    for &view in views {
        let path = mfeat_path(root, view);
        let (rows, labels) = read_rows(&path, true)?;
        if !table.labels.is_empty() && labels != table.labels {
            return Err(DataError::Format {
                path,
                message: "its labels differ from the other views': not the same samples".into(),
            });
        }
        table.dims.push(rows[0].len());
        table.shapes.push(vec![rows[0].len()]);
        table.views.push(rows.concat());
        table.labels = labels;
    }
    Ok(table)
}

/// The 8 x 8 digits split into the left and right 8 x 4 halves.
pub fn load_digits_halves(root: &Path) -> Result<Table, DataError> {
    let path = digits_path(root);
    let (rows, labels) = read_rows(&path, false)?;
    if rows[0].len() != 64 {
        return Err(DataError::Format {
            path,
            message: format!("{} pixels per row, expected 64", rows[0].len()),
        });
    }
    let half = |right: bool| -> Vec<f32> {
        rows.iter()
            .flat_map(|pixels| {
                pixels
                    .chunks(8)
                    .flat_map(move |row| if right { &row[4..] } else { &row[..4] })
                    .copied()
            })
            .collect()
    };
    Ok(Table {
        views: vec![half(false), half(true)],
        dims: vec![32, 32],
        // Each half is an 8 x 4 grey image, so image encoders can read it.
        shapes: vec![vec![1, 8, 4], vec![1, 8, 4]],
        labels,
    })
}

/// Splits stratified by class, then standardises every feature with the training split's
/// mean and standard deviation (features of these sets differ in scale by orders of magnitude).
pub fn split_table(
    table: &Table,
    split: &SplitConfig,
    device: &Device,
) -> candle_core::Result<Dataset> {
    let classes = table.labels.iter().max().map_or(0, |&c| c as usize + 1);
    let mut rng = StdRng::seed_from_u64(split.split_seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for class in 0..classes as u32 {
        let mut members: Vec<usize> = (0..table.labels.len())
            .filter(|&i| table.labels[i] == class)
            .collect();
        members.shuffle(&mut rng);
        let held_out = (members.len() as f64 * split.test_fraction).round() as usize;
        test.extend_from_slice(&members[..held_out]);
        train.extend_from_slice(&members[held_out..]);
    }
    let pick = |indices: &[usize], stats: &[(Vec<f32>, Vec<f32>)]| -> candle_core::Result<Split> {
        let inputs = table
            .views
            .iter()
            .zip(&table.dims)
            .zip(&table.shapes)
            .zip(stats)
            .map(|(((values, &dim), shape), (mean, std))| {
                let mut picked = Vec::with_capacity(indices.len() * dim);
                for &i in indices {
                    let row = &values[i * dim..(i + 1) * dim];
                    picked.extend(row.iter().zip(mean).zip(std).map(|((x, m), s)| (x - m) / s));
                }
                let mut dims = vec![indices.len()];
                dims.extend_from_slice(shape);
                Tensor::from_vec(picked, dims, device)
            })
            .collect::<candle_core::Result<_>>()?;
        let labels: Vec<u32> = indices.iter().map(|&i| table.labels[i]).collect();
        Ok(Split::new(
            inputs,
            Tensor::from_vec(labels, indices.len(), device)?,
        ))
    };
    let stats: Vec<(Vec<f32>, Vec<f32>)> = table
        .views
        .iter()
        .zip(&table.dims)
        .map(|(values, &dim)| feature_stats(values, dim, &train))
        .collect();
    Ok(Dataset {
        train: pick(&train, &stats)?,
        validation: None,
        test: pick(&test, &stats)?,
        classes,
        input_shapes: table.shapes.clone(),
    })
}

/// Per-feature mean and standard deviation over `rows`; a constant feature gets std 1.
fn feature_stats(values: &[f32], dim: usize, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; dim];
    let mut square = vec![0f64; dim];
    for &i in rows {
        for (j, &x) in values[i * dim..(i + 1) * dim].iter().enumerate() {
            mean[j] += x as f64 / n;
            square[j] += (x as f64) * (x as f64) / n;
        }
    }
    let std = mean
        .iter()
        .zip(&square)
        .map(|(m, sq)| {
            let s = (sq - m * m).max(0.0).sqrt();
            if s > 1e-12 {
                s as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn write_gz(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut gz = GzEncoder::new(File::create(path).unwrap(), Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
    }

    /// An mfeat tree in the published layout: 4 samples of 2 classes.
    fn mfeat_fixture(root: &Path) {
        write_gz(
            &mfeat_path(root, MfeatView::Mor),
            "0,1,0\n1,10,0\n2,20,0\n3,30,1\n4,40,1\n",
        );
        write_gz(
            &mfeat_path(root, MfeatView::Fac),
            "0,0\n5,0\n6,0\n7,1\n8,1\n",
        );
    }

    #[test]
    fn mfeat_views_load_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        mfeat_fixture(dir.path());
        let table = load_mfeat(dir.path(), &[MfeatView::Fac, MfeatView::Mor]).unwrap();
        assert_eq!(table.dims, [1, 2]);
        assert_eq!(table.views[1], [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]);
        assert_eq!(table.labels, [0, 0, 1, 1]);
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        mfeat_fixture(dir.path());
        let root = dir.path();
        let missing = load_mfeat(root, &[MfeatView::Fac, MfeatView::Zer]).unwrap_err();
        assert!(
            missing.to_string().contains("mfeat-zer.csv.gz"),
            "{missing}"
        );

        write_gz(
            &mfeat_path(root, MfeatView::Pix),
            "0,0\n5,0\n6,1\n7,1\n8,1\n",
        );
        let mismatch = load_mfeat(root, &[MfeatView::Fac, MfeatView::Pix]).unwrap_err();
        assert!(
            mismatch
                .to_string()
                .contains("mfeat-pix.csv.gz: its labels differ"),
            "{mismatch}"
        );

        write_gz(&mfeat_path(root, MfeatView::Kar), "0,0\n5,x\n");
        let text = load_mfeat(root, &[MfeatView::Kar, MfeatView::Fac]).unwrap_err();
        assert!(
            text.to_string().contains("mfeat-kar.csv.gz: line 2"),
            "{text}"
        );

        std::fs::write(mfeat_path(root, MfeatView::Fou), b"not gzip").unwrap();
        let corrupt = load_mfeat(root, &[MfeatView::Fou, MfeatView::Fac]).unwrap_err();
        assert!(
            corrupt.to_string().contains("mfeat-fou.csv.gz"),
            "{corrupt}"
        );
    }

    #[test]
    fn digits_split_into_left_and_right_halves() {
        let dir = tempfile::tempdir().unwrap();
        let pixels: Vec<String> = (0..64).map(|p| (p % 8).to_string()).collect();
        write_gz(
            &digits_path(dir.path()),
            &format!("{},3\n", pixels.join(",")),
        );
        let table = load_digits_halves(dir.path()).unwrap();
        assert_eq!(
            table.views[0][..8],
            [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(table.views[1][..4], [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(table.labels, [3]);
    }

    #[test]
    fn split_is_stratified_and_standardised_on_train() -> candle_core::Result<()> {
        let table = Table {
            views: vec![(0..20).map(|i| i as f32).collect()],
            dims: vec![1],
            shapes: vec![vec![1]],
            labels: (0..20).map(|i| (i % 2) as u32).collect(),
        };
        let split = SplitConfig {
            test_fraction: 0.3,
            split_seed: 1,
        };
        let data = split_table(&table, &split, &Device::Cpu)?;
        assert_eq!(
            (data.train.len(), data.test.len(), data.classes),
            (14, 6, 2)
        );
        let test_labels = data.test.labels.to_vec1::<u32>()?;
        assert_eq!(test_labels.iter().filter(|&&l| l == 1).count(), 3);
        let train = data.train.tensors().unwrap()[0].flatten_all()?;
        let mean = train.mean_all()?.to_scalar::<f32>()?;
        let var = train.sqr()?.mean_all()?.to_scalar::<f32>()?;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
        Ok(())
    }
}
