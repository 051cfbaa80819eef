//! Finding the poisoned events of a refused batch by bisection, without I/O.
//!
//! A batch refused for its data (see [`jarvis_core::sync_policy::FailureClass::Poison`]) is split in
//! halves, left half first, until each refused part is a single event: that event goes to the
//! dead letters and everything else is sent, still in sequence order. With `p` poisoned events
//! among `n`, this costs about `2 p log2(n)` extra statements instead of `n` per-row retries.

use std::collections::VecDeque;
use std::ops::Range;

/// Which part of a batch to try next, and what a refusal of it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Parts still to send, in order (index ranges into the batch).
    todo: VecDeque<Range<usize>>,
}

/// What the writer should do after a part was refused as poisoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The part was split: try [`Isolation::next`] again.
    Split,
    /// This single event (index into the batch) is the poison: dead-letter it.
    DeadLetter(usize),
}

impl Isolation {
    /// Starts with the whole batch of `len` events as one part.
    pub fn new(len: usize) -> Self {
        let mut todo = VecDeque::new();
        if len > 0 {
            todo.push_back(0..len);
        }
        Isolation { todo }
    }

    /// The part to send next, or `None` when the batch is done.
    pub fn next(&self) -> Option<Range<usize>> {
        self.todo.front().cloned()
    }

    /// The current part was committed.
    pub fn sent(&mut self) {
        self.todo.pop_front();
    }

    /// The current part was refused for its data.
    pub fn refused(&mut self) -> Refusal {
        let Some(part) = self.todo.pop_front() else {
            return Refusal::Split;
        };
        if part.len() <= 1 {
            return Refusal::DeadLetter(part.start);
        }
        let mid = part.start + part.len() / 2;
        self.todo.push_front(mid..part.end);
        self.todo.push_front(part.start..mid);
        Refusal::Split
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Runs the isolation against a server that refuses any part holding a poisoned index.
    fn run(len: usize, poison: &BTreeSet<usize>) -> (Vec<usize>, Vec<usize>, usize) {
        let mut iso = Isolation::new(len);
        let (mut sent, mut dead, mut statements) = (Vec::new(), Vec::new(), 0);
        while let Some(part) = iso.next() {
            statements += 1;
            if part.clone().any(|i| poison.contains(&i)) {
                if let Refusal::DeadLetter(i) = iso.refused() {
                    dead.push(i);
                }
            } else {
                sent.extend(part);
                iso.sent();
            }
        }
        (sent, dead, statements)
    }

    #[test]
    fn clean_batch_is_one_statement() {
        assert_eq!(run(500, &BTreeSet::new()), ((0..500).collect(), vec![], 1));
    }

    #[test]
    fn one_poison_in_the_middle() {
        let (sent, dead, statements) = run(8, &BTreeSet::from([5]));
        assert_eq!(sent, vec![0, 1, 2, 3, 4, 6, 7]);
        assert_eq!(dead, vec![5]);
        assert_eq!(statements, 7);
    }

    #[test]
    fn empty_batch_and_refusal_without_part() {
        let mut iso = Isolation::new(0);
        assert_eq!(iso.next(), None);
        assert_eq!(iso.refused(), Refusal::Split);
        assert_eq!(run(1, &BTreeSet::from([0])), (vec![], vec![0], 1));
    }

    proptest! {
        #[test]
        fn sends_all_clean_events_in_order_and_dead_letters_exactly_the_poison(
            len in 1usize..600,
            poison in proptest::collection::btree_set(0usize..600, 0..6),
        ) {
            let poison: BTreeSet<usize> = poison.into_iter().filter(|i| *i < len).collect();
            let (sent, dead, statements) = run(len, &poison);
            let clean: Vec<usize> = (0..len).filter(|i| !poison.contains(i)).collect();
            prop_assert_eq!(sent, clean);
            prop_assert_eq!(dead, poison.iter().copied().collect::<Vec<_>>());
            let depth = (usize::BITS - len.leading_zeros()) as usize + 1;
            prop_assert!(statements <= 1 + 2 * poison.len() * depth, "{} statements", statements);
        }
    }
}
