# Imports the static engine build (llama.cpp + whisper.cpp on one ggml) made by
# scripts/engines.sh as the interface target `codictate_engines`, and puts the peer
# tools (llama-server, llama-bench, llama-cli, whisper-cli, whisper-bench) next to
# our binary in bin/.

include("${CODICTATE_ENGINES}/share/codictate-engines/versions.cmake")
set(CODICTATE_ENGINE_SHARE "${CODICTATE_ENGINES}/share/codictate-engines")

set(_lib "${CODICTATE_ENGINES}/lib")
# Static link order matters: users before providers.
set(_engine_libs "${_lib}/libwhisper.a" "${_lib}/libllama.a" "${_lib}/libggml.a")
foreach(backend cuda blas)
  if(EXISTS "${_lib}/libggml-${backend}.a")
    list(APPEND _engine_libs "${_lib}/libggml-${backend}.a")
  endif()
endforeach()
list(APPEND _engine_libs "${_lib}/libggml-cpu.a" "${_lib}/libggml-base.a")
foreach(f IN LISTS _engine_libs)
  if(NOT EXISTS "${f}")
    message(FATAL_ERROR "engine library missing: ${f} (delete ${CODICTATE_ENGINES} and run make)")
  endif()
endforeach()

find_package(OpenMP REQUIRED COMPONENTS C CXX)
find_package(Threads REQUIRED)

add_library(codictate_engines INTERFACE)
target_include_directories(codictate_engines SYSTEM INTERFACE "${CODICTATE_ENGINES}/include")
target_link_libraries(codictate_engines INTERFACE ${_engine_libs} OpenMP::OpenMP_C stdc++ m Threads::Threads)
if(EXISTS "${_lib}/libggml-cuda.a")
  find_package(CUDAToolkit REQUIRED)
  target_link_libraries(codictate_engines INTERFACE CUDA::cudart_static CUDA::cublas_static
    CUDA::cublasLt_static CUDA::cuda_driver)
endif()

file(MAKE_DIRECTORY "${CMAKE_BINARY_DIR}/bin")
foreach(peer llama-server llama-bench llama-cli whisper-cli whisper-bench)
  file(CREATE_LINK "${CODICTATE_ENGINES}/bin/${peer}" "${CMAKE_BINARY_DIR}/bin/${peer}" SYMBOLIC)
endforeach()
