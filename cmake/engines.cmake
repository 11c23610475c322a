# Imports the engine build made by scripts/engines.sh (llama.cpp + whisper.cpp on one
# ggml; static, or shared with the backends as loadable modules) as the interface target
# `codictate_engines`, and puts the peer tools (llama-server, llama-bench, llama-cli,
# whisper-cli, whisper-bench) next to our binary in bin/.

include("${CODICTATE_ENGINES}/share/codictate-engines/versions.cmake")
set(CODICTATE_ENGINE_SHARE "${CODICTATE_ENGINES}/share/codictate-engines")
if(NOT DEFINED CODICTATE_ENGINES_AMX OR CODICTATE_ENGINES_AMX STREQUAL "")
  set(CODICTATE_ENGINES_AMX "unknown") # an engine build older than the AMX choice
endif()

set(_lib "${CODICTATE_ENGINES}/lib")
find_package(OpenMP REQUIRED COMPONENTS C CXX)
find_package(Threads REQUIRED)
add_library(codictate_engines INTERFACE)
target_include_directories(codictate_engines SYSTEM INTERFACE "${CODICTATE_ENGINES}/include")

if(EXISTS "${_lib}/libllama.so")
  # Backends as modules (scripts/engines.sh, CODICTATE_ENGINES_DL; the default with
  # CUDA): shared libllama/libggml, and libggml-<backend>.so, which
  # cdt_sysinfo_load_backends loads at the first model load from the engine build's
  # bin/ (CDT_GGML_BACKEND_DIR).
  set(CODICTATE_ENGINES_SHARED ON)
  set(_engine_libs "${_lib}/libwhisper.a" "${_lib}/libllama.so" "${_lib}/libggml.so" "${_lib}/libggml-base.so")
  target_compile_definitions(codictate_engines INTERFACE CDT_ENGINES_SHARED=1
    CDT_GGML_BACKEND_DIR="${CODICTATE_ENGINES}/bin")
else()
  set(CODICTATE_ENGINES_SHARED OFF)
  # Static link order matters: users before providers.
  set(_engine_libs "${_lib}/libwhisper.a" "${_lib}/libllama.a" "${_lib}/libggml.a")
  foreach(backend cuda blas)
    if(EXISTS "${_lib}/libggml-${backend}.a")
      list(APPEND _engine_libs "${_lib}/libggml-${backend}.a")
    endif()
  endforeach()
  list(APPEND _engine_libs "${_lib}/libggml-cpu.a" "${_lib}/libggml-base.a")
endif()
foreach(f IN LISTS _engine_libs)
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "engine library missing: ${f} (delete ${CODICTATE_ENGINES} and run make)")
  endif()
endforeach()
# The AVX2 CPU backend (scripts/engines.sh, for valgrind): a target with the property
# CODICTATE_MEMCHECK_KERNELS ON links it in place of the native one.
set(CODICTATE_ENGINES_MEMCHECK OFF)
if(NOT CODICTATE_ENGINES_SHARED AND EXISTS "${_lib}/memcheck/libggml-cpu.a")
  set(CODICTATE_ENGINES_MEMCHECK ON)
  list(FIND _engine_libs "${_lib}/libggml-cpu.a" _cpu)
  list(REMOVE_AT _engine_libs ${_cpu})
  list(INSERT _engine_libs ${_cpu}
    "$<IF:$<BOOL:$<TARGET_PROPERTY:CODICTATE_MEMCHECK_KERNELS>>,${_lib}/memcheck/libggml-cpu.a,${_lib}/libggml-cpu.a>")
endif()

target_link_libraries(codictate_engines INTERFACE ${_engine_libs} OpenMP::OpenMP_C stdc++ m Threads::Threads)
if(NOT CODICTATE_ENGINES_SHARED AND EXISTS "${_lib}/libggml-cuda.a")
  find_package(CUDAToolkit REQUIRED)
  # stdc++ again after the static cuBLAS libraries, which need it.
  target_link_libraries(codictate_engines INTERFACE CUDA::cudart_static CUDA::cublas_static
    CUDA::cublasLt_static CUDA::cuda_driver stdc++)
endif()

file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/bin")
foreach(peer llama-server llama-bench llama-cli whisper-cli whisper-bench)
  file(CREATE_LINK "${CODICTATE_ENGINES}/bin/${peer}" "${CMAKE_BINARY_DIR}/bin/${peer}" SYMBOLIC)
endforeach()
if(CODICTATE_ENGINES_SHARED AND NOT EXISTS "${CODICTATE_ENGINES}/bin/libggml-cpu.so")
  message(FATAL_ERROR "no CPU backend module in ${CODICTATE_ENGINES}/bin (delete it and run make)")
endif()
