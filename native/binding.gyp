{
  # scripts/build-native.mjs sets these after probing the system; defaults build the portable addon.
  "variables": {
    "use_onednn%": "false",
    "have_lapack%": "false"
  },
  "targets": [
    {
      "target_name": "relora_native",
      "sources": [
        "src/kernels/gemm.c",
        "src/kernels/gemm_builtin.c",
        "src/kernels/gemm_bf16.c",
        "src/kernels/elementwise.c",
        "src/kernels/embedding.c",
        "src/kernels/rmsnorm.c",
        "src/kernels/rope.c",
        "src/kernels/attention.c",
        "src/kernels/attention_bf16.c",
        "src/kernels/activations.c",
        "src/kernels/dropout.c",
        "src/kernels/cross_entropy.c",
        "src/kernels/adamw.c",
        "src/kernels/linalg.c",
        "src/kernels/mpi.c",
        "src/kernels/mapfile.c",
        "src/napi/addon.c",
        "src/napi/args.c",
        "src/napi/gemm.c",
        "src/napi/elementwise.c",
        "src/napi/layers.c",
        "src/napi/training.c",
        "src/napi/linalg.c",
        "src/napi/mpi.c",
        "src/napi/mapfile.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_c": ["-std=gnu11"],
      "ldflags": ["-fopenmp"],
      "conditions": [
        ["use_onednn=='true'", {
          "defines": ["RELORA_USE_ONEDNN"],
          "libraries": ["-ldnnl"]
        }],
        ["have_lapack=='true'", {
          "defines": ["RELORA_HAVE_LAPACK"]
        }]
      ]
    }
  ]
}
