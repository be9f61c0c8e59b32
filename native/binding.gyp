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
        "src/addon.c",
        "src/args.c",
        "src/gemm.c",
        "src/gemm_builtin.c",
        "src/gemm_napi.c",
        "src/elementwise.c",
        "src/embedding.c",
        "src/rmsnorm.c",
        "src/rope.c",
        "src/attention.c",
        "src/activations.c",
        "src/dropout.c",
        "src/cross_entropy.c",
        "src/adamw.c",
        "src/fused.c",
        "src/gemm_bf16.c",
        "src/linalg.c"
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
