/**
 * The differentiable operations a user composes models and losses from, each with its forward
 * and backward (gradients flow through `Tensor.backward()`). Shapes follow PyTorch's
 * conventions: `linear(x [..., in], weight [out, in]) → [..., out]`.
 */
export {
  matmul, linear, add, mul, scale, sum, mean, embedding, rmsnorm, rope, ropeTables, causalAttention, silu, swiglu, dropout,
  crossEntropy, linearCrossEntropy, IGNORE_INDEX, type RopeTables,
} from '../engine/ops/index.ts';
