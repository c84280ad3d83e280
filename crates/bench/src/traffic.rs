//! The frames the feeder sends: one image per flow cut by the pktgen fragmenter, and
//! enough copies of them in mbufs to keep the rx ring full.

use super::feeder::set_image_id;
use crate::rx::Args as RxArgs;
use netml_dpdk::{Mbuf, Mempool};
use netml_pktgen::flows::{FlowConfig, DEFAULT_DST, DEFAULT_SRC};
use netml_pktgen::fragmenter::{self, Damage, FragmentId};
use netml_pktgen::tensor;
use netml_wire::fragment::Dtype;
use netml_wire::frame::{self, Classified};
use std::collections::VecDeque;

/// Model id of the generated images.
pub(super) const MODEL: u8 = 1;

/// The traffic of a run and the size of its circulation.
pub(super) struct Traffic {
    /// The frames of one image per flow.
    pub(super) frames: Frames,
    /// Images, and mbufs, in circulation.
    pub(super) images_total: usize,
    pub(super) mbufs: usize,
    /// Mbufs of the mempool.
    pub(super) pool_size: u32,
}

/// The frames of one image per flow, cut by the pktgen fragmenter: what every bench that
/// feeds the pipeline real fragment frames starts from.
pub(super) struct Frames {
    /// Per flow: the frames of one image (id 0), in fragment order.
    pub(super) templates: Vec<Vec<Vec<u8>>>,
    /// Offset of the fragment header (the UDP payload) in every frame.
    pub(super) udp_off: usize,
    pub(super) udp_port: u16,
    /// Source port of flow 0.
    pub(super) base_port: u16,
    /// Fragments per image.
    pub(super) frags: usize,
    /// Lengths of the first and the last frame of an image.
    pub(super) frame_lens: (usize, usize),
    /// Tensor bytes of an image, and their CRC-32 (what a result must echo).
    pub(super) tensor_bytes: usize,
    pub(super) crc32: u32,
}

impl Frames {
    /// One f32 image of `shape` (e.g. `1x3x224x224`) in `frag_size`-byte fragments, for each
    /// of `flows` flows, of model [`MODEL`].
    pub(super) fn build(shape: &str, frag_size: u16, flows: u16) -> Result<Frames, String> {
        Frames::build_for(MODEL, shape, frag_size, flows)
    }

    /// Likewise for model id `model` (several inference functions, one per model).
    pub(super) fn build_for(
        model: u8,
        shape: &str,
        frag_size: u16,
        flows: u16,
    ) -> Result<Frames, String> {
        let shape = tensor::parse_shape(shape).map_err(|e| e.to_string())?;
        let t = tensor::synthetic(&shape, Dtype::F32, 1, 1)
            .map_err(|e| e.to_string())?
            .remove(0);
        let mut fc = FlowConfig::new(
            DEFAULT_SRC.parse().expect("default source"),
            DEFAULT_DST.parse().expect("default destination"),
        );
        fc.flows = flows;
        let endpoints = fc.endpoints().map_err(|e| e.to_string())?;
        fragmenter::check_frag_size(frag_size, &endpoints[0], fragmenter::DEFAULT_MTU)
            .map_err(|e| e.to_string())?;
        let count = fragmenter::fragment_count(&t, frag_size).map_err(|e| e.to_string())?;
        let templates: Vec<Vec<Vec<u8>>> = endpoints
            .iter()
            .map(|ep| {
                (0..count)
                    .map(|index| {
                        let id = FragmentId {
                            model,
                            image: 0,
                            index,
                            count,
                            frag_size,
                        };
                        fragmenter::build(ep, &t, id, 1, Damage::None)
                    })
                    .collect()
            })
            .collect();
        let udp_off = frame::parse_udp(&templates[0][0])
            .ok()
            .flatten()
            .ok_or("template frame does not parse")?
            .payload
            .start;
        let frags = usize::from(count);
        let frame_lens = (templates[0][0].len(), templates[0][frags.min(2) - 1].len());
        Ok(Frames {
            templates,
            udp_off,
            udp_port: fc.dst.port(),
            base_port: endpoints[0].src.port(),
            frags,
            frame_lens,
            tensor_bytes: t.len(),
            crc32: t.crc32,
        })
    }
}

impl Traffic {
    pub(super) fn new(a: &RxArgs) -> Result<Traffic, String> {
        let flows = usize::from(a.flows);
        let burst = usize::from(a.burst);
        let frames = Frames::build(&a.shape, a.frag_size, a.flows)?;
        let frags = frames.frags;

        // Enough images in circulation to keep the ring full while the worker holds one
        // incomplete image per flow and a few complete ones wait to be recycled.
        let images_total = (a.ring as usize + (flows + 2) * frags)
            .div_ceil(frags)
            .max(2 * flows);
        let mbufs = images_total * frags;
        let pool_size = ((mbufs + 4 * burst + 1024).next_power_of_two() - 1) as u32;
        Ok(Traffic {
            frames,
            images_total,
            mbufs,
            pool_size,
        })
    }

    /// Fills the circulation from `pool`: images dealt to the flows in turn, ids 0, 1, ...
    /// per flow. Returns the per-flow queues and each flow's next image id.
    pub(super) fn fill(&self, pool: &Mempool) -> Result<(Vec<VecDeque<Mbuf>>, Vec<u32>), String> {
        let flows = self.frames.templates.len();
        let mut queues: Vec<VecDeque<Mbuf>> = (0..flows).map(|_| VecDeque::new()).collect();
        let mut next_id = vec![0u32; flows];
        for k in 0..self.images_total {
            let f = k % flows;
            let id = next_id[f];
            next_id[f] += 1;
            for bytes in &self.frames.templates[f] {
                let mut m = Mbuf::from_bytes(pool, bytes).map_err(|e| e.to_string())?;
                set_image_id(m.data_mut(), self.frames.udp_off, id);
                queues[f].push_back(m);
            }
        }
        Ok((queues, next_id))
    }

    /// The feeder's rewrite must give valid fragments of the new image (and touch nothing
    /// else): checked on the first and last fragment of every flow.
    pub(super) fn check_rewrite(&self) -> Result<(), String> {
        let fr = &self.frames;
        for (f, frames) in fr.templates.iter().enumerate() {
            for index in [0, fr.frags - 1] {
                let mut copy = frames[index].clone();
                set_image_id(&mut copy, fr.udp_off, 0x5eed_0001);
                match frame::classify(&copy, |p| p == fr.udp_port) {
                    Classified::Fragment { header, .. }
                        if header.image == 0x5eed_0001 && usize::from(header.index) == index => {}
                    other => {
                        return Err(format!(
                        "flow {f} fragment {index}: rewriting the image id breaks the frame: {other:?}"
                    ))
                    }
                }
            }
        }
        Ok(())
    }
}
