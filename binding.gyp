{
  "targets": [
    {
      "target_name": "weft",
      "sources": [
        "native/core/error.cc",
        "native/core/ggml-types.cc",
        "native/core/gguf.cc",
        "native/core/model.cc",
        "native/core/huge-pages.cc",
        "native/core/kv-cache.cc",
        "native/core/forward.cc",
        "native/core/attention.cc",
        "native/core/sampler.cc",
        "native/cpu/kernels.cc",
        "native/cpu/kernels-ref.cc",
        "native/cpu/quants-legacy-ref.cc",
        "native/cpu/quants-k-ref.cc",
        "native/cpu/thread-pool.cc",
        "native/addon/addon.cc",
        "native/addon/errors.cc",
        "native/addon/model-wrap.cc",
        "native/addon/metadata.cc",
        "native/addon/quantize.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3"],
      "conditions": [
        ["target_arch=='x64'", {
          "defines": ["WEFT_HAVE_AVX2_TU=1", "WEFT_HAVE_AVX512_TU=1"],
          "dependencies": ["weft_avx2", "weft_avx512"]
        }]
      ]
    },
    {
      "target_name": "weft_avx2",
      "type": "static_library",
      "conditions": [["target_arch!='x64'", {"type": "none"}]],
      "sources": ["native/cpu/kernels-avx2.cc", "native/cpu/quants-legacy-avx2.cc",
                  "native/cpu/quants-k-avx2.cc"],
      "include_dirs": ["native"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-mavx2", "-mfma", "-mf16c", "-fPIC"]
    },
    {
      "target_name": "weft_avx512",
      "type": "static_library",
      "conditions": [["target_arch!='x64'", {"type": "none"}]],
      "sources": ["native/cpu/kernels-avx512.cc", "native/cpu/quants-k-avx512.cc",
                  "native/cpu/quants-legacy-avx512.cc"],
      "include_dirs": ["native"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw",
                    "-mavx512vl", "-mavx512vnni", "-fPIC"]
    }
  ]
}
