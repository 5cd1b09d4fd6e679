//! whittle-data against files written by NumPy and onnx: the committed fixtures' `.npz`, `.npy` and
//! `test_data_set_0` folders.

#![allow(clippy::unwrap_used)] // Test helpers may panic: that is how a test fails.

use std::io::Read;
use std::path::{Path, PathBuf};

use whittle_data::{load_feeds, read_arrays, read_labels, write_npz, Batching, DataError};
use whittle_ir::{DataType, Tensor, ValueInfo};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

fn feed_inputs(name: &str) -> Vec<ValueInfo> {
    let model = whittle_onnx::load(&fixture(name).join("model.onnx")).unwrap().model;
    model.graph.feed_inputs().cloned().collect()
}

fn meta_samples(name: &str, key: &str) -> i64 {
    let text = std::fs::read_to_string(fixture(name).join("meta.json")).unwrap();
    let start = text.find(&format!("\"{key}\": ")).unwrap() + key.len() + 4;
    text[start..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

fn error(result: Result<impl std::fmt::Debug, DataError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn numpy_arrays_agree_with_the_onnx_test_data_written_from_them() {
    // The generator wrote eval.npz with NumPy and test_data_set_0/input_0.pb with onnx from the first 8 samples.
    for (name, input, dtype, sample) in
        [("digits_mlp", "input", DataType::F32, vec![64]), ("transformer_tiny", "input_ids", DataType::I64, vec![16])]
    {
        let arrays = read_arrays(&fixture(name).join("eval.npz")).unwrap();
        assert_eq!(arrays.len(), 1);
        let eval = &arrays[0];
        assert_eq!((eval.name.as_str(), eval.dtype), (input, dtype));
        let mut dims = vec![meta_samples(name, "eval_samples")];
        dims.extend(&sample);
        assert_eq!(eval.dims, dims);
        let pb = read_arrays(&fixture(name).join("test_data_set_0/input_0.pb")).unwrap().remove(0);
        let first = pb.bytes().unwrap();
        assert_eq!(&eval.bytes().unwrap()[..first.len()], first, "{name}");
    }
}

#[test]
fn labels_are_class_ids_one_per_sample() {
    let labels = read_labels(&fixture("digits_cnn").join("eval_labels.npy")).unwrap();
    assert_eq!(labels.len() as i64, meta_samples("digits_cnn", "eval_samples"));
    assert!(labels.iter().all(|label| (0..10).contains(label)));
    assert!((0..10).all(|class| labels.contains(&class)));
    let err = error(read_labels(&fixture("digits_cnn").join("eval.npz")));
    assert!(err.ends_with("labels must have shape [n] or [n, 1], found [512, 1, 8, 8]"), "{err}");
}

#[test]
fn our_npy_encoding_is_numpys_byte_for_byte() {
    let file = std::fs::File::open(fixture("digits_mlp").join("calib.npz")).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut numpy_bytes = Vec::new();
    archive.by_name("input.npy").unwrap().read_to_end(&mut numpy_bytes).unwrap();
    let tensors = read_arrays(&fixture("digits_mlp").join("calib.npz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.npz");
    write_npz(&out, &tensors).unwrap();
    let mut ours = Vec::new();
    zip::ZipArchive::new(std::fs::File::open(&out).unwrap())
        .unwrap()
        .by_name("input.npy")
        .unwrap()
        .read_to_end(&mut ours)
        .unwrap();
    assert_eq!(ours, numpy_bytes);
    assert_eq!(read_arrays(&out).unwrap(), tensors);
    let again = dir.path().join("again.npz");
    write_npz(&again, &tensors).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap(), "write_npz is not deterministic");
}

/// A written archive gets the mode a file the user created would get, not the temporary file's
/// private 0o600.
#[cfg(unix)]
#[test]
fn written_archives_are_as_readable_as_created_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let reference = dir.path().join("created");
    std::fs::File::create(&reference).unwrap();
    let out = dir.path().join("out.npz");
    write_npz(&out, &read_arrays(&fixture("digits_mlp").join("calib.npz")).unwrap()).unwrap();
    assert_eq!(mode(&out), mode(&reference));
}

#[test]
fn a_npz_splits_into_feeds_of_the_batch_size() {
    let inputs = feed_inputs("digits_cnn");
    let path = fixture("digits_cnn").join("calib.npz");
    let samples = meta_samples("digits_cnn", "calib_samples") as usize;
    // The batch dimension is symbolic: one sample per feed unless asked otherwise.
    let feeds = load_feeds(&path, &inputs, Batching::Model).unwrap();
    assert_eq!(feeds.len(), samples);
    assert_eq!(feeds[0].tensors[0].dims, vec![1, 1, 8, 8]);
    let feeds = load_feeds(&path, &inputs, Batching::Samples(100)).unwrap();
    assert_eq!(feeds.iter().map(|feed| feed.tensors[0].dims[0] as usize).collect::<Vec<_>>(), vec![100, 100, samples - 200]);
    assert!(feeds[2].source.ends_with(&format!("[200..{samples}]")), "{}", feeds[2].source);
    let whole = read_arrays(&path).unwrap().remove(0);
    let joined: Vec<u8> = feeds.iter().flat_map(|feed| feed.tensors[0].bytes().unwrap().to_vec()).collect();
    assert_eq!(joined, whole.bytes().unwrap());
}

#[test]
fn a_folder_gives_one_feed_per_file_or_test_data_set_in_sorted_order() {
    let inputs = feed_inputs("digits_mlp");
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("test_data_set_0");
    std::fs::create_dir(&set).unwrap();
    std::fs::copy(fixture("digits_mlp").join("test_data_set_0/input_0.pb"), set.join("input_0.pb")).unwrap();
    let row = Tensor::from_f32("input", vec![1, 64], &[0.5; 64]).unwrap();
    write_npz(&dir.path().join("a_sample.npz"), std::slice::from_ref(&row)).unwrap();
    let feeds = load_feeds(dir.path(), &inputs, Batching::Model).unwrap();
    assert_eq!(feeds.len(), 2);
    assert_eq!(feeds[0].tensors, vec![row]);
    assert_eq!(feeds[1].tensors[0].dims, vec![8, 64]);
    assert!(feeds[1].source.ends_with("test_data_set_0"));

    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = error(load_feeds(dir.path(), &inputs, Batching::Model));
    assert!(err.contains("notes.txt: unexpected entry in a data folder"), "{err}");
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
    std::fs::remove_file(set.join("input_0.pb")).unwrap();
    let err = error(load_feeds(dir.path(), &inputs, Batching::Model));
    assert!(err.ends_with("test_data_set_0: input 'input': missing input_0.pb"), "{err}");
}

#[test]
fn wrong_data_is_named_by_file_and_input() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = feed_inputs("digits_mlp");
    let write = |file: &str, tensors: &[Tensor]| {
        let path = dir.path().join(file);
        write_npz(&path, tensors).unwrap();
        path
    };

    // Digits pixels given to the transformer, which takes int64 token ids.
    let err = error(load_feeds(&fixture("digits_mlp").join("eval.npz"), &feed_inputs("transformer_tiny"), Batching::Model));
    assert!(err.contains("eval.npz: input 'input_ids': no array for this input (arrays left: input)"), "{err}");
    let path = write("ints.npz", &[Tensor::from_i64("input", vec![2, 64], &[1; 128]).unwrap()]);
    assert!(
        error(load_feeds(&path, &mlp, Batching::Model)).ends_with("ints.npz: input 'input': expected f32, the data holds i64")
    );
    let path = write("narrow.npz", &[Tensor::from_f32("input", vec![2, 63], &[0.0; 126]).unwrap()]);
    let err = error(load_feeds(&path, &mlp, Batching::Model));
    assert!(err.ends_with("narrow.npz: input 'input': expected shape [batch,64], the data has shape [2, 63] (axis 1)"), "{err}");
    let path = write(
        "extra.npz",
        &[Tensor::from_f32("input", vec![1, 64], &[0.0; 64]).unwrap(), Tensor::from_f32("mask", vec![1], &[0.0]).unwrap()],
    );
    assert!(error(load_feeds(&path, &mlp, Batching::Model))
        .ends_with("extra.npz: array 'mask' matches no model input (inputs: input)"));
    let path = write("flat.npz", &[Tensor::from_f32("input", vec![64], &[0.0; 64]).unwrap()]);
    assert!(error(load_feeds(&path, &mlp, Batching::Model)).ends_with("expected shape [batch,64], the data has shape [64]"));

    let junk = dir.path().join("junk.npz");
    std::fs::write(&junk, b"this is not a zip archive").unwrap();
    assert!(error(read_arrays(&junk)).starts_with(&format!("{}: not a .npz archive", junk.display())));
    let missing = dir.path().join("missing.npz");
    assert!(error(load_feeds(&missing, &mlp, Batching::Model)).starts_with(&missing.display().to_string()));
    let text = dir.path().join("data.csv");
    std::fs::write(&text, "1,2").unwrap();
    assert!(error(read_arrays(&text)).ends_with("unknown data file type: expected .npy, .npz or .pb"));
}
