//! Batching: padding, targets shifted by one, masks, labels, truncation, seeded orders and
//! balanced sampling.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tinymoe::data::batch::{Batches, Sampling};

const PAD: usize = 0;

fn data() -> (Vec<Vec<usize>>, Vec<usize>) {
    let seqs = vec![vec![5, 6, 7, 8], vec![9, 10], vec![1, 2, 3, 4, 5, 6, 7, 8, 9], vec![3, 3, 3], vec![4, 4]];
    let labels = vec![0, 1, 0, 2, 0];
    (seqs, labels)
}

#[test]
fn a_batch_pads_shifts_and_masks_by_hand() {
    let (seqs, labels) = data();
    let b = Batches::new(&seqs, &labels, 5, PAD, 2).unwrap();
    assert_eq!(b.truncated, 1, "the 9-token sequence is cut to 6");
    let batch = b.batch(&[0, 2, 1]);
    assert_eq!(batch.ids, ndarray::array![[5, 6, 7, 0, 0], [1, 2, 3, 4, 5], [9, 0, 0, 0, 0]]);
    assert_eq!(batch.targets, ndarray::array![[6, 7, 8, 0, 0], [2, 3, 4, 5, 6], [10, 0, 0, 0, 0]]);
    assert_eq!(batch.mask, ndarray::array![[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]);
    assert_eq!(batch.labels, vec![0, 0, 1]);
    assert_eq!(batch.n_tokens(), 9);
    // Wherever the mask is 0, both ids and targets are padding (the loss ignores them).
    for ((&m, &i), &t) in batch.mask.iter().zip(&batch.ids).zip(&batch.targets) {
        assert!(m == 1 || (i == PAD && t == PAD));
    }
}

#[test]
fn an_epoch_visits_every_sequence_once_in_a_seeded_order() {
    let (seqs, labels) = data();
    let b = Batches::new(&seqs, &labels, 8, PAD, 2).unwrap();
    let order = b.order(Sampling::Shuffled, &mut ChaCha8Rng::seed_from_u64(1));
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
    assert_eq!(order, b.order(Sampling::Shuffled, &mut ChaCha8Rng::seed_from_u64(1)), "same seed, same order");
    let sizes: Vec<usize> = b.iter(&order).map(|batch| batch.labels.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(b.order(Sampling::InOrder, &mut ChaCha8Rng::seed_from_u64(1)), vec![0, 1, 2, 3, 4]);
}

#[test]
fn balanced_sampling_gives_every_label_equal_share_in_every_round() {
    let (seqs, labels) = data();
    let b = Batches::new(&seqs, &labels, 8, PAD, 3).unwrap();
    let order = b.order(Sampling::Balanced, &mut ChaCha8Rng::seed_from_u64(7));
    // Label 0 has 3 sequences; labels 1 and 2 are cycled up to 3 each: 9 in all.
    assert_eq!(order.len(), 9);
    assert_eq!(b.epoch_len(true), 9, "the epoch length a schedule is planned with");
    assert_eq!(b.epoch_len(false), 5);
    for batch in b.iter(&order) {
        let mut l = batch.labels.clone();
        l.sort();
        assert_eq!(l, vec![0, 1, 2], "each batch of 3 holds one of each label");
    }
    let zeros: std::collections::BTreeSet<usize> = order.iter().copied().filter(|&i| labels[i] == 0).collect();
    assert_eq!(zeros.len(), 3, "every sequence of the largest label appears");
}

#[test]
fn bad_inputs_are_named() {
    let (seqs, labels) = data();
    let err = |r: tinymoe::Result<Batches>| r.unwrap_err().to_string();
    assert!(err(Batches::new(&seqs, &labels[..2], 8, PAD, 2)).contains("labels"));
    assert!(err(Batches::new(&seqs, &labels, 0, PAD, 2)).contains("max_len"));
    assert!(err(Batches::new(&seqs, &labels, 8, PAD, 0)).contains("batch_size"));
    let short = vec![vec![1], vec![1, 2]];
    assert!(err(Batches::new(&short, &[0, 0], 8, PAD, 2)).contains("sequence 0"));
    let padded = vec![vec![1, 0, 2]];
    assert!(err(Batches::new(&padded, &[0], 8, PAD, 2)).contains("padding id"));
}

#[test]
fn the_validation_split_is_stratified_seeded_and_disjoint() {
    use tinymoe::data::batch::split_by_label;
    let labels: Vec<usize> = (0..100)
        .map(|i| {
            if i < 60 {
                0
            } else if i < 90 {
                1
            } else {
                2
            }
        })
        .collect();
    let (train, val) = split_by_label(&labels, 0.2, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let count = |rows: &[usize], l| rows.iter().filter(|&&i| labels[i] == l).count();
    assert_eq!((count(&val, 0), count(&val, 1), count(&val, 2)), (12, 6, 2));
    assert_eq!(train.len() + val.len(), 100);
    assert!(train.iter().all(|i| !val.contains(i)));
    assert_eq!((train.clone(), val.clone()), split_by_label(&labels, 0.2, &mut ChaCha8Rng::seed_from_u64(3)).unwrap());
    assert_ne!(val, split_by_label(&labels, 0.2, &mut ChaCha8Rng::seed_from_u64(4)).unwrap().1);
    assert!(split_by_label(&labels, 1.0, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap_err()
        .to_string()
        .contains("val_fraction"));
}
