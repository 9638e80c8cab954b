# Under pip (scikit-build-core, SKBUILD set): configure, build and install this same project
# again, nested, in <build-dir>/core, a directory that survives from one pip install to the next.
#
# Why: pip builds every time in a new isolated environment, and scikit-build-core then deletes
# the CMake cache and CMakeFiles/ of a kept build directory ("New isolated environment ...,
# clearing cache"), and with CMakeFiles/ every object file. The nested build's own cache and
# objects are left alone, so the README's second command, or any reinstall, recompiles only
# what changed. What keeps the nested cache honest: the kept build is started afresh when its
# toolchain is not the one a fresh configure would take today (below); in CMakeLists.txt,
# pybind11's headers are copied to a fixed path (their isolated-environment path changes every
# time), pybind11 is looked up afresh, and a compiler or nvcc that was not found is looked up
# again. Everything scikit-build-core decided (Python, its prefix paths, the generator and its
# program, the build type, the FASTINIT_* options) is passed on each time.
#
# Included from CMakeLists.txt once its options are declared; the outer project enables no language.

set(_nested "${CMAKE_BINARY_DIR}/core")

# The value of a variable in the nested build's cache ("" when absent).
function(_fastinit_cached out name)
  set(value "")
  if(EXISTS "${_nested}/CMakeCache.txt")
    file(STRINGS "${_nested}/CMakeCache.txt" line REGEX "^${name}:[A-Z]+=")
    if(line)
      string(REGEX REPLACE "^${name}:[A-Z]+=" "" value "${line}")
    endif()
  endif()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# The compiler a fresh configure would take today, as CMake looks for it: the environment
# variable (a path or a name), else, for nvcc, nvcc on the PATH or in $CUDA_PATH/bin. Real path,
# or "" when there is none.
function(_fastinit_compiler_today out env_var default_name)
  unset(found)
  if(NOT "$ENV{${env_var}}" STREQUAL "")
    find_program(found NAMES "$ENV{${env_var}}" NO_CACHE)
  elseif(default_name)
    find_program(found NAMES "${default_name}" NO_CACHE PATHS "$ENV{CUDA_PATH}/bin"
                 NO_CMAKE_PATH NO_CMAKE_ENVIRONMENT_PATH NO_CMAKE_SYSTEM_PATH NO_CMAKE_INSTALL_PREFIX)
  endif()
  if(found)
    file(REAL_PATH "${found}" found)
  else()
    set(found "")
  endif()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

# A kept build is started afresh when what its cache recorded is not what a fresh configure
# would take today, so that it never builds with a toolchain that is gone or no longer asked
# for: another generator; a C++ compiler that is gone, or another one (or none) named by CXX; an nvcc
# that is gone, or another one first on the PATH (or named by CUDACXX). What was not found is
# looked up again by CMakeLists.txt itself, and an nvcc that left the PATH is only not used.
_fastinit_cached(_generator CMAKE_GENERATOR)
_fastinit_cached(_cxx CMAKE_CXX_COMPILER)
_fastinit_cached(_nvcc CMAKE_CUDA_COMPILER)
_fastinit_compiler_today(_cxx_today CXX "")
_fastinit_compiler_today(FASTINIT_NVCC_TODAY CUDACXX nvcc)
set(_afresh "")
if(_generator AND NOT _generator STREQUAL CMAKE_GENERATOR)
  set(_afresh "it was made by ${_generator}")
elseif(_cxx AND NOT _cxx MATCHES "NOTFOUND$" AND NOT EXISTS "${_cxx}")
  set(_afresh "its C++ compiler ${_cxx} is gone")
elseif(_cxx AND NOT _cxx MATCHES "NOTFOUND$" AND NOT "$ENV{CXX}" STREQUAL "")
  file(REAL_PATH "${_cxx}" _cxx_real)
  if(NOT _cxx_real STREQUAL _cxx_today)
    set(_afresh "CXX=$ENV{CXX} is not the compiler it used, ${_cxx}")
  endif()
endif()
if(NOT _afresh AND _nvcc AND NOT _nvcc MATCHES "NOTFOUND$")
  if(NOT EXISTS "${_nvcc}")
    set(_afresh "its nvcc ${_nvcc} is gone")
  elseif(FASTINIT_NVCC_TODAY)
    file(REAL_PATH "${_nvcc}" _nvcc_real)
    if(NOT _nvcc_real STREQUAL FASTINIT_NVCC_TODAY)
      set(_afresh "the nvcc found today is ${FASTINIT_NVCC_TODAY}, not ${_nvcc}")
    endif()
  endif()
endif()
if(_afresh)
  message(STATUS "fastinit: starting the kept build in ${_nested} afresh: ${_afresh}")
  file(REMOVE_RECURSE "${_nested}")
endif()

set(_args -S "${CMAKE_SOURCE_DIR}" -B "${_nested}" -G "${CMAKE_GENERATOR}"
    -C "${CMAKE_BINARY_DIR}/CMakeInit.txt"
    -DFASTINIT_NESTED=ON
    "-DFASTINIT_NVCC_TODAY=${FASTINIT_NVCC_TODAY}"
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
