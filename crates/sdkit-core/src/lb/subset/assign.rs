//! Deterministic subsetting as pure functions over instance ids (see [`super`]).

use crate::lb::stable_hash::{combine, hash_bytes};

const ID_SEED: u64 = 0x7375_6273_6574_0001;
const KEY_SEED: u64 = 0x7375_6273_6574_0002;

/// The subset of `min(k, ids.len())` ids that client number `client` uses, as indices into
/// `ids` in ascending order.
///
/// Clients are grouped into rounds of `G = ⌈n / k⌉` consecutive indices. In each round the
/// clients claim backends in turn, each taking the `k` it prefers most (by a stable hash of
/// round, position and backend id) among those no earlier client of the round took; when
/// `n` is not a multiple of `k` the last client of a round tops up with its most preferred
/// already-claimed backends. Every backend is therefore used once per round (plus at most
/// `G·k − n < k` reuses), so with many clients the busiest backend has at most about one
/// client more than the idlest — with 100 clients, 300 backends and k = 25 the counts are 8
/// and 9 (ratio 1.125). A backend that leaves only changes the subsets of its holders and of
/// the later clients of the same round that the holders' replacements were taken from (about
/// a quarter of the clients at 300 backends, against nearly all with the SRE book's
/// shuffle), as long as `⌈n / k⌉` is unchanged. The result depends only on the set of ids,
/// not on their order.
///
/// Cost: O(n · G) hashes for a client at the end of its round, computed once per snapshot.
///
/// ```
/// use sdkit_core::lb::subset::subset_by_index;
///
/// let ids: Vec<String> = (0..300).map(|i| format!("10.0.{}.{}:80", i / 250, i % 250)).collect();
/// let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
/// let mine = subset_by_index(&ids, 25, 7);
/// assert_eq!(mine.len(), 25);
/// assert_eq!(mine, subset_by_index(&ids, 25, 7)); // stable
/// ```
pub fn subset_by_index(ids: &[&str], k: usize, client: u64) -> Vec<usize> {
    let n = ids.len();
    if k == 0 || n == 0 {
        return Vec::new();
    }
    if k >= n {
        return (0..n).collect();
    }
    let per_round = n.div_ceil(k) as u64;
    let round = client / per_round;
    let position = client % per_round;
    let id_hashes = hash_ids(ids);
    let mut claimed = vec![false; n];
    let mut mine = Vec::with_capacity(k);
    for g in 0..=position {
        let salt = combine(round, g);
        // Candidates: unclaimed first (by preference), topped up from the claimed ones.
        let mut free: Vec<(u64, usize)> = Vec::with_capacity(n);
        let mut taken: Vec<(u64, usize)> = Vec::new();
        for (i, &h) in id_hashes.iter().enumerate() {
            let pref = combine(h, salt);
            if claimed[i] {
                taken.push((pref, i));
            } else {
                free.push((pref, i));
            }
        }
        let mut subset = top(&mut free, k, ids);
        let missing = k - subset.len();
        if missing > 0 {
            subset.extend(top(&mut taken, missing, ids));
        }
        for &i in &subset {
            claimed[i] = true;
        }
        if g == position {
            mine = subset;
        }
    }
    mine.sort_unstable();
    mine
}

/// The subset of `min(k, ids.len())` ids for a client known only by a key (a host name, a
/// pod name): rendezvous hashing, the `k` ids with the highest hash of (key, id). Without an
/// index clients cannot coordinate, so the load per backend is binomial rather than even
/// (with 100 clients, 300 backends and k = 25: mean 8.3, standard deviation 2.8), but churn
/// is minimal: a backend that leaves only changes the subsets that held it, and one that
/// joins only those it enters. Indices into `ids`, ascending; independent of the order of
/// `ids`.
///
/// ```
/// use sdkit_core::lb::subset::subset_by_key;
///
/// let ids = ["a:1", "b:1", "c:1", "d:1"];
/// let mine = subset_by_key(&ids, 2, "client-7.example");
/// assert_eq!(mine.len(), 2);
/// // Removing an id outside the subset changes nothing.
/// let other = (0..4).find(|i| !mine.contains(i)).unwrap();
/// let rest: Vec<&str> = ids.iter().enumerate().filter(|(i, _)| *i != other).map(|(_, s)| *s).collect();
/// let again: Vec<&str> = subset_by_key(&rest, 2, "client-7.example").iter().map(|&i| rest[i]).collect();
/// let before: Vec<&str> = mine.iter().map(|&i| ids[i]).collect();
/// assert_eq!(again, before);
/// ```
pub fn subset_by_key(ids: &[&str], k: usize, key: &str) -> Vec<usize> {
    let n = ids.len();
    if k == 0 || n == 0 {
        return Vec::new();
    }
    if k >= n {
        return (0..n).collect();
    }
    let salt = hash_bytes(KEY_SEED, key.as_bytes());
    let mut all: Vec<(u64, usize)> = hash_ids(ids)
        .into_iter()
        .enumerate()
        .map(|(i, h)| (combine(h, salt), i))
        .collect();
    let mut mine = top(&mut all, k, ids);
    mine.sort_unstable();
    mine
}

fn hash_ids(ids: &[&str]) -> Vec<u64> {
    ids.iter()
        .map(|id| hash_bytes(ID_SEED, id.as_bytes()))
        .collect()
}

/// The indices of the `k` highest-preference entries (all of them when fewer), ties broken
/// by id so that the order of the input never matters. Reorders `entries`.
fn top(entries: &mut [(u64, usize)], k: usize, ids: &[&str]) -> Vec<usize> {
    let cmp =
        |a: &(u64, usize), b: &(u64, usize)| b.0.cmp(&a.0).then_with(|| ids[a.1].cmp(ids[b.1]));
    if entries.len() > k {
        entries.select_nth_unstable_by(k, cmp);
    }
    entries.iter().take(k).map(|e| e.1).collect()
}
