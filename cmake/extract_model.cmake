# Unpacks the built-in model (models/<name>.tar.xz, committed) into the build tree's
# share dir and checks it against the catalog's sha256:
#   cmake -DARCHIVE=<tar.xz> -DFILE=<gguf name> -DSHA256=<hex> -DDEST=<dir> -P extract_model.cmake
# CMake's own libarchive reads the .tar.xz: no xz tool is needed.
foreach(var ARCHIVE FILE SHA256 DEST)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "extract_model.cmake: -D${var}=... is required")
  endif()
endforeach()
file(MAKE_DIRECTORY "${DEST}/.unpack")
file(ARCHIVE_EXTRACT INPUT "${ARCHIVE}" DESTINATION "${DEST}/.unpack" PATTERNS "${FILE}")
file(SHA256 "${DEST}/.unpack/${FILE}" got)
if(NOT got STREQUAL SHA256)
  file(REMOVE_RECURSE "${DEST}/.unpack")
  message(FATAL_ERROR "${ARCHIVE}: ${FILE} has sha256 ${got}, expected ${SHA256} "
                      "(catalog/catalog.json)")
endif()
file(RENAME "${DEST}/.unpack/${FILE}" "${DEST}/${FILE}")
file(REMOVE_RECURSE "${DEST}/.unpack")
