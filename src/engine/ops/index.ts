export { matmul, linear, loraLinear, loraProductOrder, bf16Support, type MatmulOptions, type LoraDropout, type LoraLinearOptions, type LoraOrder } from './matmul.ts';
export { add, mul, scale, sum, mean } from './elementwise.ts';
export { embedding } from './embedding.ts';
export { rmsnorm } from './rmsnorm.ts';
export { rope, ropeTables, type RopeTables } from './rope.ts';
export { causalAttention } from './attention.ts';
export { silu, swiglu, dropout } from './activations.ts';
export { crossEntropy, linearCrossEntropy, defaultChunkRows, IGNORE_INDEX, type LinearCrossEntropyOptions } from './loss.ts';
export { repeatKV } from './repeat-kv.ts';
