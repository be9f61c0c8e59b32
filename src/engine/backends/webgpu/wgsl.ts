/**
 * WGSL compute shaders, fp32, one entry point `main` each. They compute what the js backend
 * (../js.ts, the readable reference) computes; the conventions of ../kernels.ts hold (forward
 * writes, backward accumulates). Each shader declares its parameters as a uniform struct of
 * 4-byte scalars in the order ./device.ts writes them.
 *
 * 1-D kernels run 256 invocations per workgroup over a 2-D grid of workgroups (a dimension holds
 * at most 65535 of them), so element i = x + y·(groups in x)·256.
 */

const INDEX = /* wgsl */ `
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 256u; }
`;

/** Wellons' lowbias32, bit for bit the hash32 of ../../rng.ts (u32 products wrap like Math.imul). */
const HASH = /* wgsl */ `
fn hash32(key: u32, counter: u32) -> u32 {
  var x = (counter * 0x9e3779b1u) ^ key;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}
`;

function elementwise(params: string, bindings: string, body: string, extra = ''): string {
  return `${INDEX}${extra}
struct P { n: u32, ${params} }
${bindings}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  ${body}
}`;
}

const R = (b: number, name: string, type = 'f32'): string => `@group(0) @binding(${b}) var<storage, read> ${name}: array<${type}>;`;
const W = (b: number, name: string, type = 'f32'): string => `@group(0) @binding(${b}) var<storage, read_write> ${name}: array<${type}>;`;
const U = (b: number): string => `@group(0) @binding(${b}) var<uniform> p: P;`;

/** The (batch, head) row of attention shaders: i = (b·H + h)·T + position. */
const HEAD_ROW = /* wgsl */ `
  let bh = i / p.T;
  let h = bh % p.H;
  let b = bh / p.H;
  let HD = p.H * p.D;`;

const SILU = /* wgsl */ `
fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn siluGrad(x: f32) -> f32 { let s = 1.0 / (1.0 + exp(-x)); return s * (1.0 + x * (1.0 - s)); }
`;

export const WGSL = {
  add: elementwise('pad: u32', [R(0, 'a'), R(1, 'b'), W(2, 'o'), U(3)].join('\n'), 'o[i] = a[i] + b[i];'),
  mul: elementwise('pad: u32', [R(0, 'a'), R(1, 'b'), W(2, 'o'), U(3)].join('\n'), 'o[i] = a[i] * b[i];'),
  scale: elementwise('s: f32', [R(0, 'a'), W(1, 'o'), U(2)].join('\n'), 'o[i] = a[i] * p.s;'),
  axpy: elementwise('alpha: f32', [R(0, 'x'), W(1, 'y'), U(2)].join('\n'), 'y[i] = y[i] + p.alpha * x[i];'),
  addScalar: elementwise('v: f32', [W(0, 'o'), U(1)].join('\n'), 'o[i] = o[i] + p.v;'),
  fill: elementwise('v: f32', [W(0, 'o'), U(1)].join('\n'), 'o[i] = p.v;'),

  siluForward: elementwise('pad: u32', [R(0, 'x'), W(1, 'o'), U(2)].join('\n'), 'o[i] = silu(x[i]);', SILU),
  siluBackward: elementwise('pad: u32', [R(0, 'g'), R(1, 'x'), W(2, 'dx'), U(3)].join('\n'), 'dx[i] = dx[i] + g[i] * siluGrad(x[i]);', SILU),
  swigluForward: elementwise('pad: u32', [R(0, 'gate'), R(1, 'up'), W(2, 'o'), U(3)].join('\n'), 'o[i] = silu(gate[i]) * up[i];', SILU),
  /** want bit 1: dGate, bit 2: dUp (an absent one is bound to a 1-float dummy); bit 4: write, not add. */
  swigluBackward: elementwise('want: u32', [R(0, 'g'), R(1, 'gate'), R(2, 'up'), W(3, 'dGate'), W(4, 'dUp'), U(5)].join('\n'), `
  let add = (p.want & 4u) == 0u;
  if ((p.want & 1u) != 0u) { dGate[i] = select(0.0, dGate[i], add) + g[i] * up[i] * siluGrad(gate[i]); }
  if ((p.want & 2u) != 0u) { dUp[i] = select(0.0, dUp[i], add) + g[i] * silu(gate[i]); }`, SILU),

  dropoutMask: elementwise('key: u32, threshold: u32, s: f32', [W(0, 'mask'), U(1)].join('\n'),
    'mask[i] = select(0.0, p.s, hash32(p.key, i) >= p.threshold);', HASH),
  dropoutApply: elementwise('key: u32, threshold: u32, s: f32', [R(0, 'x'), W(1, 'o'), U(2)].join('\n'),
    'o[i] = x[i] * select(0.0, p.s, hash32(p.key, i) >= p.threshold);', HASH),
  dropoutBackwardAdd: elementwise('key: u32, threshold: u32, s: f32', [R(0, 'g'), W(1, 'dx'), U(2)].join('\n'),
    'dx[i] = dx[i] + g[i] * select(0.0, p.s, hash32(p.key, i) >= p.threshold);', HASH),
  /** The optimizer reset's random pruning (src/relora/prune.ts): keep iff (hash32 >> 8) > floor(p·2^24). */
  pruneRandom: elementwise('key: u32, keepAbove: u32', [W(0, 'x'), U(1)].join('\n'),
    'if ((hash32(p.key, i) >> 8u) <= p.keepAbove) { x[i] = 0.0; }', HASH),

  adamwStep: elementwise('lr: f32, beta1: f32, beta2: f32, eps: f32, decay: f32, stepSize: f32, bc2Sqrt: f32, gradScale: f32',
    [W(0, 'param'), R(1, 'grad'), W(2, 'm'), W(3, 'v'), U(4)].join('\n'), `
  let g = grad[i] * p.gradScale;
  let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
  let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let denom = sqrt(vi) / p.bc2Sqrt + p.eps;
  param[i] = param[i] * p.decay - p.stepSize * (mi / denom);`),

  /** sum (squares = 0) or sum of squares (squares = 1) of x[0..n) into out[slot], one workgroup. */
  reduce: /* wgsl */ `
struct P { n: u32, squares: u32, slot: u32 }
${R(0, 'x')}
${W(1, 'out')}
${U(2)}
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < p.n; i = i + 256u) {
    let v = x[i];
    s = s + select(v, v * v, p.squares == 1u);
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w = w >> 1u) {
    if (lid.x < w) { part[lid.x] = part[lid.x] + part[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[p.slot] = part[0]; }
}`,

  /**
   * Batched GEMM, 64×64 tiles of C per workgroup, a 4×4 register block per invocation, K in
   * steps of 16 through workgroup memory. Operands may start at an element offset.
   */
  gemm: /* wgsl */ `
struct P { M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32, sA: u32, sB: u32, sC: u32, offA: u32, offB: u32, offC: u32, tA: u32, tB: u32, alpha: f32, beta: f32 }
${R(0, 'A')}
${R(1, 'B')}
${W(2, 'C')}
${U(3)}
var<workgroup> As: array<array<f32, 64>, 16>;
var<workgroup> Bs: array<array<f32, 64>, 16>;
fn loadA(base: u32, i: u32, k: u32) -> f32 {
  if (i >= p.M || k >= p.K) { return 0.0; }
  if (p.tA == 1u) { return A[base + k * p.lda + i]; }
  return A[base + i * p.lda + k];
}
fn loadB(base: u32, k: u32, j: u32) -> f32 {
  if (j >= p.N || k >= p.K) { return 0.0; }
  if (p.tB == 1u) { return B[base + j * p.ldb + k]; }
  return B[base + k * p.ldb + j];
}
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = wg.y * 64u;
  let col0 = wg.x * 64u;
  let baseA = p.offA + wg.z * p.sA;
  let baseB = p.offB + wg.z * p.sB;
  let baseC = p.offC + wg.z * p.sC;
  let tid = lid.y * 16u + lid.x;
  var acc: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 = k0 + 16u) {
    for (var e = 0u; e < 4u; e = e + 1u) {
      let idx = tid + e * 256u;
      let kk = idx / 64u;
      let mm = idx % 64u;
      As[kk][mm] = loadA(baseA, row0 + mm, k0 + kk);
      Bs[kk][mm] = loadB(baseB, k0 + kk, col0 + mm);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk = kk + 1u) {
      let b = vec4<f32>(Bs[kk][lid.x * 4u], Bs[kk][lid.x * 4u + 1u], Bs[kk][lid.x * 4u + 2u], Bs[kk][lid.x * 4u + 3u]);
      for (var r = 0u; r < 4u; r = r + 1u) {
        acc[r] = acc[r] + As[kk][lid.y * 4u + r] * b;
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r = r + 1u) {
    let i = row0 + lid.y * 4u + r;
    if (i >= p.M) { continue; }
    for (var c = 0u; c < 4u; c = c + 1u) {
      let j = col0 + lid.x * 4u + c;
      if (j >= p.N) { continue; }
      let ci = baseC + i * p.ldc + j;
      var v = p.alpha * acc[r][c];
      if (p.beta != 0.0) { v = v + p.beta * C[ci]; }
      C[ci] = v;
    }
  }
}`,

  embeddingForward: elementwise('dim: u32', [R(0, 'weight'), R(1, 'ids', 'i32'), W(2, 'o'), U(3)].join('\n'), `
  let r = i / p.dim;
  o[i] = weight[u32(ids[r]) * p.dim + i % p.dim];`),
  /** One invocation per column of the table: it walks the ids in order, so no two write one element. */
  embeddingBackward: elementwise('nIds: u32', [R(0, 'g'), R(1, 'ids', 'i32'), W(2, 'dW'), U(3)].join('\n'), `
  let dim = p.n;
  for (var r = 0u; r < p.nIds; r = r + 1u) {
    let w = u32(ids[r]) * dim + i;
    dW[w] = dW[w] + g[r * dim + i];
  }`),

  /** n = rows; one invocation per row. */
  rmsnormForward: elementwise('dim: u32, eps: f32', [R(0, 'x'), R(1, 'weight'), W(2, 'o'), W(3, 'rstd'), U(4)].join('\n'), `
  let o0 = i * p.dim;
  var ss = 0.0;
  for (var j = 0u; j < p.dim; j = j + 1u) { ss = ss + x[o0 + j] * x[o0 + j]; }
  let rs = 1.0 / sqrt(ss / f32(p.dim) + p.eps);
  rstd[i] = rs;
  for (var j = 0u; j < p.dim; j = j + 1u) { o[o0 + j] = x[o0 + j] * rs * weight[j]; }`),
  /** n = rows; dx rows. */
  rmsnormBackwardDx: elementwise('dim: u32', [R(0, 'g'), R(1, 'x'), R(2, 'weight'), R(3, 'rstd'), W(4, 'dx'), U(5)].join('\n'), `
  let o0 = i * p.dim;
  let rs = rstd[i];
  var dot = 0.0;
  for (var j = 0u; j < p.dim; j = j + 1u) { dot = dot + g[o0 + j] * weight[j] * x[o0 + j]; }
  let c = rs * rs * rs * dot / f32(p.dim);
  for (var j = 0u; j < p.dim; j = j + 1u) { dx[o0 + j] = dx[o0 + j] + rs * g[o0 + j] * weight[j] - c * x[o0 + j]; }`),
  /** n = dim; one invocation per column, summing over rows. */
  rmsnormBackwardDw: elementwise('rows: u32', [R(0, 'g'), R(1, 'x'), R(2, 'rstd'), W(3, 'dW'), U(4)].join('\n'), `
  var s = 0.0;
  for (var r = 0u; r < p.rows; r = r + 1u) { s = s + g[r * p.n + i] * x[r * p.n + i] * rstd[r]; }
  dW[i] = dW[i] + s;`),

  /** n = B·T·H·D/2 pairs; accumulate = 1 adds the inverse rotation (backward), 0 writes the forward one. */
  rope: elementwise('T: u32, H: u32, D: u32, backward: u32', [R(0, 'x'), R(1, 'cosT'), R(2, 'sinT'), W(3, 'o'), U(4)].join('\n'), `
  let half = p.D / 2u;
  let k = i % half;
  let row = i / half;
  let t = (row / p.H) % p.T;
  let o0 = row * p.D;
  let c = cosT[t * half + k];
  let s = sinT[t * half + k];
  let x1 = x[o0 + k];
  let x2 = x[o0 + half + k];
  if (p.backward == 1u) {
    o[o0 + k] = o[o0 + k] + x1 * c + x2 * s;
    o[o0 + half + k] = o[o0 + half + k] + x2 * c - x1 * s;
  } else {
    o[o0 + k] = x1 * c - x2 * s;
    o[o0 + half + k] = x2 * c + x1 * s;
  }`),

  /** n = B·H·T query rows; each writes its probabilities row (zeros above the diagonal) and output. */
  attentionForward: elementwise('T: u32, H: u32, D: u32, scale: f32', [R(0, 'q'), R(1, 'k'), R(2, 'v'), W(3, 'o'), W(4, 'probs'), U(5)].join('\n'), `
  let t = i % p.T;
${HEAD_ROW}
  let qo = (b * p.T + t) * HD + h * p.D;
  let prow = i * p.T;
  var mx = -3.4e38;
  for (var s = 0u; s <= t; s = s + 1u) {
    let ko = (b * p.T + s) * HD + h * p.D;
    var dot = 0.0;
    for (var d = 0u; d < p.D; d = d + 1u) { dot = dot + q[qo + d] * k[ko + d]; }
    let z = dot * p.scale;
    probs[prow + s] = z;
    mx = max(mx, z);
  }
  var denom = 0.0;
  for (var s = 0u; s <= t; s = s + 1u) { let e = exp(probs[prow + s] - mx); probs[prow + s] = e; denom = denom + e; }
  for (var s = 0u; s <= t; s = s + 1u) { probs[prow + s] = probs[prow + s] / denom; }
  for (var s = t + 1u; s < p.T; s = s + 1u) { probs[prow + s] = 0.0; }
  for (var d = 0u; d < p.D; d = d + 1u) {
    var acc = 0.0;
    for (var s = 0u; s <= t; s = s + 1u) { acc = acc + probs[prow + s] * v[(b * p.T + s) * HD + h * p.D + d]; }
    o[qo + d] = acc;
  }`),
  /** n = B·H·T rows: rowDot[row] = Σ_s P·(dout_t·v_s), then dq for that query row. */
  attentionBackwardQ: elementwise('T: u32, H: u32, D: u32, scale: f32, wantDq: u32',
    [R(0, 'g'), R(1, 'k'), R(2, 'v'), R(3, 'probs'), W(4, 'rowDot'), W(5, 'dq'), U(6)].join('\n'), `
  let t = i % p.T;
${HEAD_ROW}
  let to = (b * p.T + t) * HD + h * p.D;
  let prow = i * p.T;
  var rd = 0.0;
  for (var s = 0u; s <= t; s = s + 1u) {
    let so = (b * p.T + s) * HD + h * p.D;
    var dp = 0.0;
    for (var d = 0u; d < p.D; d = d + 1u) { dp = dp + g[to + d] * v[so + d]; }
    rd = rd + dp * probs[prow + s];
  }
  rowDot[i] = rd;
  if (p.wantDq == 0u) { return; }
  for (var s = 0u; s <= t; s = s + 1u) {
    let so = (b * p.T + s) * HD + h * p.D;
    var dp = 0.0;
    for (var d = 0u; d < p.D; d = d + 1u) { dp = dp + g[to + d] * v[so + d]; }
    let dS = probs[prow + s] * (dp - rd) * p.scale;
    for (var d = 0u; d < p.D; d = d + 1u) { dq[to + d] = dq[to + d] + dS * k[so + d]; }
  }`),
  /** n = B·H·T key rows s: dk and dv summed over the queries t >= s (want: 1 dk, 2 dv). */
  attentionBackwardKV: elementwise('T: u32, H: u32, D: u32, scale: f32, want: u32',
    [R(0, 'g'), R(1, 'q'), R(2, 'v'), R(3, 'probs'), R(4, 'rowDot'), W(5, 'dk'), W(6, 'dv'), U(7)].join('\n'), `
  let s = i % p.T;
${HEAD_ROW}
  let so = (b * p.T + s) * HD + h * p.D;
  for (var t = s; t < p.T; t = t + 1u) {
    let to = (b * p.T + t) * HD + h * p.D;
    let pr = probs[(bh * p.T + t) * p.T + s];
    var dp = 0.0;
    for (var d = 0u; d < p.D; d = d + 1u) { dp = dp + g[to + d] * v[so + d]; }
    let dS = pr * (dp - rowDot[bh * p.T + t]) * p.scale;
    for (var d = 0u; d < p.D; d = d + 1u) {
      if ((p.want & 2u) != 0u) { dv[so + d] = dv[so + d] + pr * g[to + d]; }
      if ((p.want & 1u) != 0u) { dk[so + d] = dk[so + d] + dS * q[to + d]; }
    }
  }`),

  /** n = rows: lse and the loss of each row (0 for the ignore index). */
  crossEntropyForward: elementwise('V: u32, ignore: i32', [R(0, 'logits'), R(1, 'targets', 'i32'), W(2, 'losses'), W(3, 'lse'), U(4)].join('\n'), `
  let o0 = i * p.V;
  var mx = -3.4e38;
  for (var j = 0u; j < p.V; j = j + 1u) { mx = max(mx, logits[o0 + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.V; j = j + 1u) { s = s + exp(logits[o0 + j] - mx); }
  let l = mx + log(s);
  lse[i] = l;
  let t = targets[i];
  if (t == p.ignore) { losses[i] = 0.0; } else { losses[i] = l - logits[o0 + u32(t)]; }`),
  /** n = rows·V; write = 1 overwrites dLogits. */
  crossEntropyBackward: elementwise('V: u32, ignore: i32, gradScale: f32, write: u32',
    [R(0, 'logits'), R(1, 'targets', 'i32'), R(2, 'lse'), W(3, 'dLogits'), U(4)].join('\n'), `
  let r = i / p.V;
  let j = i % p.V;
  let t = targets[r];
  var d = 0.0;
  if (t != p.ignore) {
    d = p.gradScale * exp(logits[i] - lse[r]);
    if (u32(t) == j) { d = d - p.gradScale; }
  }
  if (p.write == 1u) { dLogits[i] = d; } else { dLogits[i] = dLogits[i] + d; }`),
} as const;

export type ShaderName = keyof typeof WGSL;
