//! The send loop: images in, fates decided, frames built in send order and handed to a
//! sink, manifest lines out.

use crate::faults::{Fate, Faults, Tally};
use crate::flows::FlowConfig;
use crate::fragmenter::{self, Damage, FragmentId};
use crate::manifest::Entry;
use crate::output::Sink;
use crate::pace::{Pacer, Rate};
use crate::progress::Progress;
use crate::reorder::Reorder;
use crate::rng::{self, Rng};
use crate::summary::Summary;
use crate::tensor::Tensor;
use crate::{bail, Result};
use netml_wire::fragment::{DESCRIPTOR_LEN, HEADER_LEN};
use netml_wire::frame::Endpoints;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limit {
    /// Passes over the inputs (default 1 unless `count` or `duration` is given).
    pub loops: Option<u64>,
    /// Total images.
    pub count: Option<u64>,
    /// Run time: wall clock live, virtual (pcap timestamp) time for files.
    pub duration: Option<Duration>,
}

/// Everything a send run needs besides its output.
#[derive(Debug, Clone)]
pub struct Config {
    /// Tensors to send, cycled over.
    pub tensors: Vec<Tensor>,
    /// Model ids; images go round-robin over them.
    pub models: Vec<u8>,
    /// Addresses and flows.
    pub flows: FlowConfig,
    /// Nominal payload bytes per fragment.
    pub frag_size: u16,
    /// IP MTU that fragment 0 must fit in.
    pub mtu: usize,
    /// Fault injection.
    pub faults: Faults,
    /// Seed of every random choice.
    pub seed: u64,
    /// Pacing.
    pub rate: Rate,
    /// Stop condition.
    pub limit: Limit,
    /// Image id of the first image of every (flow, model).
    pub first_image: u32,
    /// Print progress even when stderr is not a terminal.
    pub progress: bool,
}

impl Config {
    /// A configuration sending `tensors` with defaults everywhere else.
    pub fn new(tensors: Vec<Tensor>) -> Self {
        Config {
            tensors,
            models: vec![0],
            flows: FlowConfig::new(
                crate::flows::DEFAULT_SRC.parse().expect("constant"),
                crate::flows::DEFAULT_DST.parse().expect("constant"),
            ),
            frag_size: fragmenter::DEFAULT_FRAG_SIZE,
            mtu: fragmenter::DEFAULT_MTU,
            faults: Faults::default(),
            seed: 1,
            rate: Rate::Unlimited,
            limit: Limit::default(),
            first_image: 0,
            progress: false,
        }
    }
}

/// Per-image state shared by the image's frames while they are in flight.
struct ImageState {
    model: u8,
    image: u32,
    flow: usize,
    tensor: Rc<Tensor>,
    count: u16,
    intact: bool,
    /// Frames (including duplicates) this image still has to send.
    remaining: u32,
    /// Frames this image sends in all, for `--ips` pacing.
    frames: u32,
    /// Timestamp of fragment 0, set when it is first built.
    ts0: Option<u64>,
    /// Timestamp of the image's first frame, whatever its index.
    first_ts: Option<u64>,
}

impl ImageState {
    fn entry(&self, src: std::net::SocketAddr, fallback_ts: u64) -> Entry {
        Entry {
            model: self.model,
            image: self.image,
            src,
            crc32: self.tensor.crc32,
            fragments: self.count,
            intact: self.intact,
            // If fragment 0 never went out, the image "started" with its first frame, or
            // when it would have been sent.
            sender_timestamp: self.ts0.or(self.first_ts).unwrap_or(fallback_ts),
            input: Some(self.tensor.name.clone()),
            expected_class: None,
        }
    }
}

/// One frame waiting for its turn.
#[derive(Clone)]
struct Planned {
    img: Rc<RefCell<ImageState>>,
    index: u16,
    damage: Damage,
}

/// Length of fragment `index`'s frame (undamaged).
fn frame_len(headers: usize, total: usize, frag_size: u16, index: u16) -> usize {
    let fs = frag_size as usize;
    let payload = fs.min(total - index as usize * fs);
    headers + HEADER_LEN + if index == 0 { DESCRIPTOR_LEN } else { 0 } + payload
}

struct Run<'a> {
    cfg: &'a Config,
    eps: Vec<Endpoints>,
    sink: &'a mut dyn Sink,
    on_image: &'a mut dyn FnMut(&Entry) -> Result<()>,
    pacer: Pacer,
    progress: Progress,
    frames: u64,
    bytes: u64,
    images_started: u64,
}

impl Run<'_> {
    fn write(&mut self, p: Planned) -> Result<()> {
        if self.pacer.must_wait() {
            self.sink.flush()?;
        }
        let ts = self.pacer.slot();
        let mut st = p.img.borrow_mut();
        st.first_ts.get_or_insert(ts);
        // A duplicate of fragment 0 reuses the first copy's timestamp, so both copies are
        // identical.
        let desc_ts = if p.index == 0 {
            *st.ts0.get_or_insert(ts)
        } else {
            0
        };
        let id = FragmentId {
            model: st.model,
            image: st.image,
            index: p.index,
            count: st.count,
            frag_size: self.cfg.frag_size,
        };
        let ep = &self.eps[st.flow];
        let frame = fragmenter::build(ep, &st.tensor, id, desc_ts, p.damage);
        let n = self.sink.send(&frame, ts, st.flow, ep.header_len())?;
        self.pacer.advance(frame.len(), st.frames);
        self.frames += 1;
        self.bytes += n as u64;
        st.remaining -= 1;
        if st.remaining == 0 {
            (self.on_image)(&st.entry(ep.src, ts))?;
        }
        self.progress
            .tick(self.frames, self.images_started, self.bytes);
        Ok(())
    }
}

/// Sends images until the limit, returning the summary. `on_image` gets every image's
/// manifest entry once its last frame is out (so not necessarily in image order).
pub fn run(
    cfg: &Config,
    sink: &mut dyn Sink,
    on_image: &mut dyn FnMut(&Entry) -> Result<()>,
) -> Result<Summary> {
    let started = Instant::now();
    if cfg.tensors.is_empty() {
        bail!("no input tensors");
    }
    if cfg.models.is_empty() {
        bail!("no model ids");
    }
    cfg.faults.validate()?;
    cfg.rate.validate()?;
    let eps = cfg.flows.endpoints()?;
    fragmenter::check_frag_size(cfg.frag_size, &eps[0], cfg.mtu)?;
    let counts = cfg
        .tensors
        .iter()
        .map(|t| fragmenter::fragment_count(t, cfg.frag_size))
        .collect::<Result<Vec<u16>>>()?;
    tracing::info!(
        tensors = cfg.tensors.len(),
        fragments_per_image = ?counts,
        flows = eps.len(),
        models = ?cfg.models,
        rate = ?cfg.rate,
        faults = ?cfg.faults,
        "sending"
    );
    let tensors: Vec<Rc<Tensor>> = cfg.tensors.iter().cloned().map(Rc::new).collect();
    let total = match (cfg.limit.count, cfg.limit.loops, cfg.limit.duration) {
        (Some(n), _, _) => Some(n),
        (None, Some(l), _) => Some(l.saturating_mul(tensors.len() as u64)),
        (None, None, Some(_)) => None,
        (None, None, None) => Some(tensors.len() as u64),
    };
    let (n_models, n_flows) = (cfg.models.len() as u64, eps.len() as u64);
    let mut next_id = vec![cfg.first_image; (n_models * n_flows) as usize];
    let mut fault_rng = Rng::new(cfg.seed, rng::stream::FAULTS);
    let mut reorder: Reorder<Planned> = Reorder::new(cfg.faults.reorder, cfg.seed);
    let mut tally = Tally::default();
    let live = sink.is_live();
    let mut run = Run {
        cfg,
        eps,
        sink,
        on_image,
        pacer: Pacer::new(cfg.rate, live),
        progress: Progress::new(cfg.progress),
        frames: 0,
        bytes: 0,
        images_started: 0,
    };

    for k in 0u64.. {
        if total.is_some_and(|n| k >= n) {
            break;
        }
        if cfg.limit.duration.is_some_and(|d| run.pacer.elapsed() >= d) {
            break;
        }
        let t = (k % tensors.len() as u64) as usize;
        let model_idx = k % n_models;
        // Flows advance once per full round of models, so every (flow, model) pair occurs.
        let flow = ((k / n_models) % n_flows) as usize;
        let slot = &mut next_id[flow * n_models as usize + model_idx as usize];
        let image = *slot;
        *slot = slot.wrapping_add(1);
        let count = counts[t];
        let headers = run.eps[flow].header_len();
        let len = tensors[t].len();
        let fates = cfg.faults.plan(
            count,
            headers,
            |i| frame_len(headers, len, cfg.frag_size, i),
            &mut fault_rng,
        );
        let intact = tally.add(&fates);
        let frames: u32 = fates
            .iter()
            .map(|f| match f {
                Fate::Delivered { dup } => 1 + *dup as u32,
                Fate::Damaged(_) => 1,
                Fate::Lost | Fate::Withheld => 0,
            })
            .sum();
        let state = Rc::new(RefCell::new(ImageState {
            model: cfg.models[model_idx as usize],
            image,
            flow,
            tensor: tensors[t].clone(),
            count,
            intact,
            remaining: frames,
            frames,
            ts0: None,
            first_ts: None,
        }));
        run.images_started += 1;
        if frames == 0 {
            let e = state.borrow().entry(run.eps[flow].src, run.pacer.peek());
            (run.on_image)(&e)?;
        }
        for (index, fate) in fates.iter().enumerate() {
            let (damage, dup) = match *fate {
                Fate::Delivered { dup } => (Damage::None, dup),
                Fate::Damaged(d) => (d, false),
                Fate::Lost | Fate::Withheld => continue,
            };
            let p = Planned {
                img: state.clone(),
                index: index as u16,
                damage,
            };
            reorder.push(p, dup);
            while let Some(p) = reorder.pop() {
                run.write(p)?;
            }
        }
    }
    reorder.finish();
    while let Some(p) = reorder.pop() {
        run.write(p)?;
    }
    run.sink.finish()?;
    run.progress.finish();
    debug_assert_eq!(run.frames, tally.frames());
    Ok(Summary::new(
        &tally,
        run.frames,
        run.bytes,
        reorder.moved(),
        started.elapsed().as_secs_f64(),
    ))
}
