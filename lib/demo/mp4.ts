/**
 * A small MP4 encoder for the demo stand-in's videos, with no native dependency: H.264 (the
 * Constrained Baseline profile every browser and phone plays) whose macroblocks are all `I_PCM`,
 * that is, raw YUV 4:2:0 samples with no prediction or transform, each frame an IDR picture, in an
 * ISO MP4 file with its index first (`moov` before `mdat`), so it plays as it downloads. The
 * files are large for their size (384 bytes per 16×16 block), which is why demo videos are small.
 * @module
 */
import { concatBytes } from "../bytes.ts";

/** What to encode: the size, the frame rate and count, and each pixel's colour. */
export interface VideoPicture {
  /** Width in pixels (even). */
  width: number;
  /** Height in pixels (even). */
  height: number;
  /** Frames per second. */
  fps: number;
  /** How many frames. */
  frames: number;
  /** The colour of a pixel of a frame, `[r, g, b]` from 0 to 255. */
  pixel(x: number, y: number, frame: number): readonly [number, number, number];
}

/** Writes bits, most significant first, with H.264's Exp-Golomb codes. */
class BitWriter {
  #bytes: number[] = [];
  #current = 0;
  #count = 0;

  bits(value: number, width: number): this {
    for (let i = width - 1; i >= 0; i--) {
      this.#current = (this.#current << 1) | ((value >>> i) & 1);
      if (++this.#count === 8) {
        this.#bytes.push(this.#current);
        this.#current = 0;
        this.#count = 0;
      }
    }
    return this;
  }

  /** An unsigned Exp-Golomb code, `ue(v)`. */
  ue(value: number): this {
    const width = 32 - Math.clz32(value + 1);
    return this.bits(0, width - 1).bits(value + 1, width);
  }

  /** Zero bits up to the next byte. */
  align(): this {
    while (this.#count) this.bits(0, 1);
    return this;
  }

  /** Whole bytes, once aligned. */
  bytes(values: Uint8Array): this {
    for (const value of values) this.#bytes.push(value);
    return this;
  }

  /** `rbsp_trailing_bits()`, and the payload. */
  finish(): Uint8Array<ArrayBuffer> {
    this.bits(1, 1).align();
    return Uint8Array.from(this.#bytes);
  }
}

/** A NAL unit: its header byte, then the payload with emulation prevention bytes. */
function nal(header: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = [header];
  let zeros = 0;
  for (const byte of payload) {
    if (zeros >= 2 && byte <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(byte);
    zeros = byte === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

const PROFILE_BASELINE = 66;
const CONSTRAINED = 0xc0; // constraint_set0 and constraint_set1: Constrained Baseline
const LEVEL = 30; // 3.0

function sequenceParameterSet(width: number, height: number): Uint8Array<ArrayBuffer> {
  const mbWidth = Math.ceil(width / 16);
  const mbHeight = Math.ceil(height / 16);
  const w = new BitWriter().bits(PROFILE_BASELINE, 8).bits(CONSTRAINED, 8).bits(LEVEL, 8);
  w.ue(0); // seq_parameter_set_id
  w.ue(0); // log2_max_frame_num_minus4
  w.ue(2); // pic_order_cnt_type: output order is decoding order
  w.ue(1).bits(0, 1); // max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
  w.ue(mbWidth - 1).ue(mbHeight - 1);
  w.bits(1, 1).bits(1, 1); // frame_mbs_only_flag, direct_8x8_inference_flag
  const cropRight = (mbWidth * 16 - width) / 2;
  const cropBottom = (mbHeight * 16 - height) / 2;
  if (cropRight || cropBottom) w.bits(1, 1).ue(0).ue(cropRight).ue(0).ue(cropBottom);
  else w.bits(0, 1);
  w.bits(0, 1); // vui_parameters_present_flag
  return nal(0x67, w.finish());
}

function pictureParameterSet(): Uint8Array<ArrayBuffer> {
  const w = new BitWriter().ue(0).ue(0); // pic_parameter_set_id, seq_parameter_set_id
  w.bits(0, 1).bits(0, 1); // CAVLC, bottom_field_pic_order_in_frame_present_flag
  w.ue(0).ue(0).ue(0); // num_slice_groups_minus1, num_ref_idx_l0/l1_default_active_minus1
  w.bits(0, 1).bits(0, 2); // weighted_pred_flag, weighted_bipred_idc
  w.ue(0).ue(0).ue(0); // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset (se 0)
  w.bits(1, 1).bits(0, 1).bits(0, 1); // deblocking control present, constrained intra, redundant
  return nal(0x68, w.finish());
}

/** One frame as an IDR slice of `I_PCM` macroblocks. */
function frameSlice(picture: VideoPicture, frame: number): Uint8Array<ArrayBuffer> {
  const mbWidth = Math.ceil(picture.width / 16);
  const mbHeight = Math.ceil(picture.height / 16);
  const w = new BitWriter().ue(0).ue(7).ue(0); // first_mb_in_slice, slice_type I, pps id
  w.bits(0, 4).ue(frame % 2); // frame_num, idr_pic_id (consecutive IDRs differ)
  w.bits(0, 1).bits(0, 1); // no_output_of_prior_pics_flag, long_term_reference_flag
  w.ue(0).ue(1); // slice_qp_delta (se 0), disable_deblocking_filter_idc
  const block = new Uint8Array(384);
  for (let my = 0; my < mbHeight; my++) {
    for (let mx = 0; mx < mbWidth; mx++) {
      pcmBlock(picture, frame, mx * 16, my * 16, block);
      w.ue(25).align().bytes(block); // mb_type I_PCM, pcm_alignment_zero_bits, the samples
    }
  }
  return nal(0x65, w.finish());
}

/** A 16×16 block's samples: 256 Y, then 64 Cb and 64 Cr (each chroma sample is 2×2 pixels). */
function pcmBlock(picture: VideoPicture, frame: number, x0: number, y0: number, out: Uint8Array) {
  const clampX = (x: number) => Math.min(x, picture.width - 1);
  const clampY = (y: number) => Math.min(y, picture.height - 1);
  // BT.601 studio range; samples stay within 1–254 (0 is not a PCM sample in older decoders).
  const sample = (v: number) => Math.max(1, Math.min(254, Math.round(v)));
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) {
      const [r, g, b] = picture.pixel(clampX(x0 + x), clampY(y0 + y), frame);
      out[y * 16 + x] = sample(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255);
    }
  }
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const [r, g, b] = picture.pixel(clampX(x0 + 2 * x), clampY(y0 + 2 * y), frame);
      out[256 + y * 8 + x] = sample(128 + (-37.797 * r - 74.203 * g + 112 * b) / 255);
      out[320 + y * 8 + x] = sample(128 + (112 * r - 93.786 * g - 18.214 * b) / 255);
    }
  }
}

/** An MP4 box: size, type, payload. */
function box(type: string, ...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const body = concatBytes(parts);
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setUint32(0, out.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  return out;
}

/** Big-endian fields: `[value, bytes]` pairs, or text. */
function fields(...values: (number | string | [number, number])[]): Uint8Array<ArrayBuffer> {
  const out: number[] = [];
  for (const value of values) {
    if (typeof value === "string") { for (const c of value) out.push(c.charCodeAt(0)); }
    else {
      const [v, width] = typeof value === "number" ? [value, 4] : value;
      for (let i = width - 1; i >= 0; i--) out.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

const MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000];

/** Encodes a picture as a playable MP4 file. */
export function encodeMp4(picture: VideoPicture): Uint8Array<ArrayBuffer> {
  const { width, height, fps, frames } = picture;
  const sps = sequenceParameterSet(width, height);
  const pps = pictureParameterSet();
  // Samples are length-prefixed NAL units; the parameter sets live in the avcC box.
  const samples = Array.from({ length: frames }, (_, f) => {
    const slice = frameSlice(picture, f);
    return concatBytes([fields(slice.length), slice]);
  });
  const timescale = fps * 1000;
  const durationMs = Math.round((frames * 1000) / fps);
  const avcC = box(
    "avcC",
    fields([1, 1], [PROFILE_BASELINE, 1], [CONSTRAINED, 1], [LEVEL, 1], [0xff, 1], [0xe1, 1]),
    fields([sps.length, 2]),
    sps,
    fields([1, 1], [pps.length, 2]),
    pps,
  );
  const avc1 = box(
    "avc1",
    fields([0, 6], [1, 2], [0, 16], [width, 2], [height, 2], 0x00480000, 0x00480000, 0, [1, 2]),
    new Uint8Array(32), // compressorname
    fields([0x18, 2], [0xffff, 2]),
    avcC,
  );
  const stbl = box(
    "stbl",
    box("stsd", fields(0, 1), avc1),
    box("stts", fields(0, 1, frames, 1000)),
    box("stsc", fields(0, 1, 1, frames, 1)),
    box("stsz", fields(0, 0, frames, ...samples.map((s) => s.length))),
    box("stco", fields(0, 1, 0)), // the offset of mdat's data, set below
  );
  const minf = box(
    "minf",
    box("vmhd", fields(1, [0, 2], [0, 6])),
    box("dinf", box("dref", fields(0, 1), box("url ", fields(1)))),
    stbl,
  );
  const mdia = box(
    "mdia",
    box("mdhd", fields(0, 0, 0, timescale, frames * 1000, [0x55c4, 2], [0, 2])),
    box("hdlr", fields(0, 0, "vide", 0, 0, 0, "VideoHandler", [0, 1])),
    minf,
  );
  const tkhd = box(
    "tkhd",
    fields(3, 0, 0, 1, 0, durationMs, 0, 0, [0, 2], [0, 2], [0, 2], [0, 2], ...MATRIX),
    fields(width * 65536, height * 65536),
  );
  const mvhd = box(
    "mvhd",
    fields(0, 0, 0, 1000, durationMs, 0x00010000, [0x0100, 2], [0, 2], 0, 0, ...MATRIX),
    fields(0, 0, 0, 0, 0, 0, 2),
  );
  const ftyp = box("ftyp", fields("isom", 512, "isomiso2avc1mp41"));
  const moov = box("moov", mvhd, box("trak", tkhd, mdia));
  const data = concatBytes(samples);
  // stco's one offset (where mdat's data starts) is moov's last four bytes: stco closes stbl,
  // which closes minf, mdia, trak and moov.
  new DataView(moov.buffer).setUint32(moov.length - 4, ftyp.length + moov.length + 8);
  return concatBytes([ftyp, moov, fields(8 + data.length, "mdat"), data]);
}
