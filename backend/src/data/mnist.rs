//! MNIST in its published IDX format, gzip'd (`train-images-idx3-ubyte.gz`, ...).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::DataError;

/// One MNIST part: 28 x 28 grey images, row-major, and their labels.
pub struct MnistPart {
    /// Every image, one after another: 28 x 28 bytes each, 0 (black) to 255.
    pub images: Vec<u8>,
    /// The digit of each image, 0-9.
    pub labels: Vec<u8>,
}

impl MnistPart {
    /// Side of an image in pixels.
    pub const SIDE: usize = 28;

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Image `i`, 28 x 28 bytes row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = Self::SIDE * Self::SIDE;
        &self.images[i * size..(i + 1) * size]
    }
}

/// The files of the training (`t10k == false`) or test part.
pub fn mnist_paths(root: &Path, test: bool) -> (PathBuf, PathBuf) {
    let prefix = if test { "t10k" } else { "train" };
    let dir = root.join("mnist");
    (
        dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
    )
}

fn read_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::Format {
            path: path.to_owned(),
            message: format!("not a readable gzip file: {e}"),
        })?;
    Ok(bytes)
}

/// The big-endian u32 header fields of an IDX file after checking its magic number, and the
/// payload after them.
fn idx<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    fields: usize,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let bad = |message: String| DataError::Format {
        path: path.to_owned(),
        message,
    };
    let header = 4 * (fields + 1);
    if bytes.len() < header {
        return Err(bad("shorter than an IDX header".into()));
    }
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    if word(0) != magic {
        return Err(bad(format!(
            "IDX magic number {:#010x}, expected {magic:#010x}",
            word(0)
        )));
    }
    let dims: Vec<usize> = (1..=fields).map(|i| word(i) as usize).collect();
    let payload = &bytes[header..];
    let expected: usize = dims.iter().product();
    if payload.len() != expected {
        return Err(bad(format!(
            "{} bytes of data, the header says {expected}",
            payload.len()
        )));
    }
    Ok((dims, payload))
}

/// The training (`test == false`) or test part under `{root}/mnist/`; a malformed file is an
/// error naming it.
pub fn load_mnist_part(root: &Path, test: bool) -> Result<MnistPart, DataError> {
    let (images_path, labels_path) = mnist_paths(root, test);
    let images_bytes = read_gz(&images_path)?;
    let (dims, images) = idx(&images_path, &images_bytes, 0x0803, 3)?;
    if dims[1..] != [MnistPart::SIDE, MnistPart::SIDE] {
        return Err(DataError::Format {
            path: images_path,
            message: format!("images are {}x{}, expected 28x28", dims[1], dims[2]),
        });
    }
    let labels_bytes = read_gz(&labels_path)?;
    let (label_dims, labels) = idx(&labels_path, &labels_bytes, 0x0801, 1)?;
    if label_dims[0] != dims[0] || labels.iter().any(|&y| y > 9) {
        return Err(DataError::Format {
            path: labels_path,
            message: format!(
                "{} labels (all 0-9 expected) for {} images",
                label_dims[0], dims[0]
            ),
        });
    }
    Ok(MnistPart {
        images: images.to_vec(),
        labels: labels.to_vec(),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn write_gz(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut gz = GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap();
    }

    /// Writes an MNIST part in the published layout: image i is filled with value i, its
    /// label is `labels[i]`.
    pub fn write_mnist(root: &Path, test: bool, labels: &[u8]) {
        let (images_path, labels_path) = mnist_paths(root, test);
        let mut images = Vec::new();
        for v in [0x0803u32, labels.len() as u32, 28, 28] {
            images.extend(v.to_be_bytes());
        }
        for i in 0..labels.len() {
            images.extend(std::iter::repeat_n(i as u8, 28 * 28));
        }
        write_gz(&images_path, &images);
        let mut label_bytes = Vec::new();
        for v in [0x0801u32, labels.len() as u32] {
            label_bytes.extend(v.to_be_bytes());
        }
        label_bytes.extend(labels);
        write_gz(&labels_path, &label_bytes);
    }

    #[test]
    fn reads_the_published_idx_layout() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), true, &[3, 1, 4]);
        let part = load_mnist_part(dir.path(), true).unwrap();
        assert_eq!(part.labels, [3, 1, 4]);
        assert_eq!(part.image(2), [2u8; 784]);
    }

    #[test]
    fn a_truncated_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), false, &[3, 1, 4]);
        let (images, _) = mnist_paths(dir.path(), false);
        let bytes = read_gz(&images).unwrap();
        write_gz(&images, &bytes[..bytes.len() - 10]);
        let err = load_mnist_part(dir.path(), false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte.gz") && err.contains("the header says"),
            "{err}"
        );
    }
}
