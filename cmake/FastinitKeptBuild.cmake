# Under pip (scikit-build-core, SKBUILD set): configure, build and install this same project
# again, nested, in <build-dir>/core, a directory that survives from one pip install to the next.
#
# Why: pip builds every time in a new isolated environment, and scikit-build-core then deletes
# the CMake cache and CMakeFiles/ of a kept build directory ("New isolated environment ...,
# clearing cache"), and with CMakeFiles/ every object file. The nested build's own cache and
# objects are left alone, so the README's second command, or any reinstall, recompiles only
# what changed. What keeps the nested cache honest is in CMakeLists.txt: pybind11's headers
# are copied to a fixed path (their isolated-environment path changes every time), pybind11 is
# looked up afresh, and the compiler and nvcc lookups are redone when they found nothing or
# what they found has gone. Everything scikit-build-core decided (Python, its prefix paths, the
# generator and its program, the build type, the FASTINIT_* options) is passed on each time.
#
# Included from CMakeLists.txt right after project(); the outer project enables no language.

set(_nested "${CMAKE_BINARY_DIR}/core")

# A nested build made by another generator cannot be reconfigured: start it afresh.
if(EXISTS "${_nested}/CMakeCache.txt")
  file(STRINGS "${_nested}/CMakeCache.txt" _generator REGEX "^CMAKE_GENERATOR:INTERNAL=")
  if(NOT _generator STREQUAL "CMAKE_GENERATOR:INTERNAL=${CMAKE_GENERATOR}")
    file(REMOVE_RECURSE "${_nested}")
  endif()
endif()

set(_args -S "${CMAKE_SOURCE_DIR}" -B "${_nested}" -G "${CMAKE_GENERATOR}"
    -C "${CMAKE_BINARY_DIR}/CMakeInit.txt"
    -DFASTINIT_NESTED=ON
    "-DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}"
    "-DFASTINIT_CUDA=${FASTINIT_CUDA}"
    "-DFASTINIT_CUDA_ARCHS=${FASTINIT_CUDA_ARCHS}"
    "-DFASTINIT_REQUIRE_NATIVE=${FASTINIT_REQUIRE_NATIVE}")
if(CMAKE_MAKE_PROGRAM)
  list(APPEND _args "-DCMAKE_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}")
endif()
if(CMAKE_GENERATOR_PLATFORM)
  list(APPEND _args -A "${CMAKE_GENERATOR_PLATFORM}")
endif()
if(CMAKE_GENERATOR_TOOLSET)
  list(APPEND _args -T "${CMAKE_GENERATOR_TOOLSET}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" ${_args} RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR "fastinit: configuring the compiled core in ${_nested} failed (see above)")
endif()

# Built every time (the nested build tool decides what is out of date), installed into the
# wheel that scikit-build-core is assembling.
add_custom_target(fastinit_core ALL
  COMMAND "${CMAKE_COMMAND}" --build "${_nested}" --config "${CMAKE_BUILD_TYPE}"
  USES_TERMINAL VERBATIM)
install(CODE "
execute_process(COMMAND \"${CMAKE_COMMAND}\" --install \"${_nested}\" --config \"${CMAKE_BUILD_TYPE}\"
                        --prefix \"\${CMAKE_INSTALL_PREFIX}\" RESULT_VARIABLE _result)
if(NOT _result EQUAL 0)
  message(FATAL_ERROR \"fastinit: installing the compiled core from ${_nested} failed\")
endif()")
