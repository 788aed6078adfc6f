//! One batch update of the tree: rebuilds the paths the updates touch, bottom-up, splitting
//! the two halves across threads near the root, and collects the new nodes in order.

use super::node::{bit, load, Node, NodeStore, SmtError, EMPTY};
use lanes_types::Hash;

/// Batches larger than this split across threads near the root.
const PAR_MIN_UPDATES: usize = 512;
/// Levels near the root at which the two halves of an update run in parallel.
const PAR_MAX_DEPTH: usize = 4;

/// The result of a batch update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeUpdate {
    /// The new root.
    pub root: Hash,
    /// The nodes created, to persist with the block (in a deterministic order; may repeat
    /// nodes that already exist).
    pub new_nodes: Vec<(Hash, Node)>,
}

impl TreeUpdate {
    /// Stores the new nodes.
    pub fn persist(&self, store: &mut impl NodeStore) {
        for (h, n) in &self.new_nodes {
            store.put_node(*h, n.clone());
        }
    }
}

/// Whether a subtree update of `len` entries at `depth` runs its two halves in parallel.
fn split_here(depth: usize, len: usize) -> bool {
    depth < PAR_MAX_DEPTH && len >= PAR_MIN_UPDATES && rayon::current_num_threads() > 1
}

/// A subtree after an update, as far as its parent needs to know it.
#[derive(Clone, Copy)]
enum Sub {
    Empty,
    Leaf(Hash),
    Internal(Hash),
    /// Unchanged subtree whose kind was not loaded.
    Unknown(Hash),
}

impl Sub {
    fn hash(&self) -> Hash {
        match self {
            Sub::Empty => EMPTY,
            Sub::Leaf(h) | Sub::Internal(h) | Sub::Unknown(h) => *h,
        }
    }
}

/// Runs one update over a node store.
struct Updater<'a, S: NodeStore> {
    store: &'a S,
}

/// New nodes in output order, as a list of segments: a parallel branch fills its own segment
/// list, which is moved (not copied) behind its left sibling's; [`Out::concat`] joins them
/// once, in parallel, at the end.
struct Out {
    segments: Vec<Vec<(Hash, Node)>>,
}

impl Out {
    fn new() -> Self {
        Out {
            segments: vec![Vec::new()],
        }
    }

    fn push(&mut self, node: (Hash, Node)) {
        self.segments
            .last_mut()
            .expect("an output has a segment")
            .push(node);
    }

    /// Appends `other`'s nodes after this output's, moving segments only.
    fn append(&mut self, other: Out) {
        self.segments.extend(other.segments);
    }

    /// The nodes as one vector, copied segment by segment in parallel on the current pool.
    fn concat(self) -> Vec<(Hash, Node)> {
        crate::parallel::concat(self.segments)
    }
}

impl<S: NodeStore> Updater<'_, S> {
    /// The node with hash `h` (`None`: empty).
    fn load(&self, h: &Hash) -> Result<Option<Node>, SmtError> {
        load(self.store, h)
    }

    /// `s` with its kind known (loads an unchanged subtree's root).
    fn resolve(&self, s: Sub) -> Result<Sub, SmtError> {
        Ok(match s {
            Sub::Unknown(h) => match self.load(&h)? {
                None => Sub::Empty,
                Some(Node::Leaf { .. }) => Sub::Leaf(h),
                Some(Node::Internal { .. }) => Sub::Internal(h),
            },
            other => other,
        })
    }

    /// The parent of `l` and `r`: an empty pair stays empty, a lone leaf moves up, anything
    /// else makes an internal node (pushed to `out`).
    fn join(&self, l: Sub, r: Sub, out: &mut Out) -> Result<Sub, SmtError> {
        let (l, r) = match (l, r) {
            (Sub::Empty, Sub::Empty) => return Ok(Sub::Empty),
            (Sub::Empty, x) => (Sub::Empty, self.resolve(x)?),
            (x, Sub::Empty) => (self.resolve(x)?, Sub::Empty),
            other => other,
        };
        match (l, r) {
            (Sub::Empty, Sub::Empty) => Ok(Sub::Empty),
            (Sub::Empty, Sub::Leaf(h)) | (Sub::Leaf(h), Sub::Empty) => Ok(Sub::Leaf(h)),
            (l, r) => {
                let node = Node::Internal {
                    left: l.hash(),
                    right: r.hash(),
                };
                let h = node.hash();
                out.push((h, node));
                Ok(Sub::Internal(h))
            }
        }
    }

    /// The subtree at `depth` holding exactly `leaves` (sorted by path).
    fn build(&self, depth: usize, leaves: &[(Hash, Hash)], out: &mut Out) -> Result<Sub, SmtError> {
        match leaves {
            [] => Ok(Sub::Empty),
            [(path, value)] => {
                let node = Node::Leaf {
                    path: *path,
                    value: *value,
                };
                let h = node.hash();
                out.push((h, node));
                Ok(Sub::Leaf(h))
            }
            _ => {
                assert!(depth < 256, "duplicate path in a tree update");
                let split = leaves.partition_point(|(p, _)| !bit(p, depth));
                let (l, r) = leaves.split_at(split);
                let (ls, rs) = if split_here(depth, leaves.len()) {
                    let mut rout = Out::new();
                    let (ls, rs) = rayon::join(
                        || self.build(depth + 1, l, out),
                        || self.build(depth + 1, r, &mut rout),
                    );
                    out.append(rout);
                    (ls?, rs?)
                } else {
                    (
                        self.build(depth + 1, l, out)?,
                        self.build(depth + 1, r, out)?,
                    )
                };
                self.join(ls, rs, out)
            }
        }
    }

    /// The subtree `node` at `depth` after `ups` (sorted; only paths under it).
    fn update(
        &self,
        node: Hash,
        depth: usize,
        ups: &[(Hash, Option<Hash>)],
        out: &mut Out,
    ) -> Result<Sub, SmtError> {
        if ups.is_empty() {
            return Ok(if node == EMPTY {
                Sub::Empty
            } else {
                Sub::Unknown(node)
            });
        }
        match self.load(&node)? {
            None => {
                let leaves: Vec<(Hash, Hash)> =
                    ups.iter().filter_map(|(p, v)| v.map(|v| (*p, v))).collect();
                self.build(depth, &leaves, out)
            }
            Some(Node::Leaf { path, value }) => {
                self.build(depth, &merge_leaf((path, value), ups), out)
            }
            Some(Node::Internal { left, right }) => {
                assert!(depth < 256, "internal node at the bottom of the tree");
                let split = ups.partition_point(|(p, _)| !bit(p, depth));
                let (lu, ru) = ups.split_at(split);
                let (ls, rs) = if split_here(depth, ups.len()) {
                    let mut rout = Out::new();
                    let (ls, rs) = rayon::join(
                        || self.update(left, depth + 1, lu, out),
                        || self.update(right, depth + 1, ru, &mut rout),
                    );
                    out.append(rout);
                    (ls?, rs?)
                } else {
                    (
                        self.update(left, depth + 1, lu, out)?,
                        self.update(right, depth + 1, ru, out)?,
                    )
                };
                self.join(ls, rs, out)
            }
        }
    }
}

/// The leaves under a one-leaf subtree after `ups` (sorted by path): the existing leaf unless
/// an update names its path, and every update that sets a value, in path order.
fn merge_leaf(leaf: (Hash, Hash), ups: &[(Hash, Option<Hash>)]) -> Vec<(Hash, Hash)> {
    let mut leaves: Vec<(Hash, Hash)> = Vec::with_capacity(ups.len() + 1);
    let mut existing = Some(leaf);
    for (p, v) in ups {
        if let Some((ep, ev)) = existing {
            if ep < *p {
                leaves.push((ep, ev));
                existing = None;
            } else if ep == *p {
                existing = None;
            }
        }
        if let Some(v) = v {
            leaves.push((*p, *v));
        }
    }
    if let Some(e) = existing {
        leaves.push(e);
    }
    leaves
}

/// Applies a batch of updates (sorted by path, each path once; `None` deletes) to the tree with
/// root `root`. Returns the new root and the nodes to persist.
pub fn update<S: NodeStore>(
    store: &S,
    root: Hash,
    updates: &[(Hash, Option<Hash>)],
) -> Result<TreeUpdate, SmtError> {
    use rayon::prelude::*;
    assert!(
        updates.par_windows(2).all(|w| w[0].0 < w[1].0),
        "tree updates must be sorted and unique"
    );
    let mut out = Out::new();
    let sub = Updater { store }.update(root, 0, updates, &mut out)?;
    Ok(TreeUpdate {
        root: sub.hash(),
        new_nodes: out.concat(),
    })
}
