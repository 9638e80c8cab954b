# fastinit_write_build_info(CORE <bool> [REASON ..] [FIX ..] [CXX ..] [CPU_KERNELS ..] [CUDA ..]): writes fastinit/_build_info.py into the build directory
# and installs it next to the package, so that the package knows how it was built: the
# import-time fallback warning names the cause and the fix, and `fastinit info` shows it.

function(_fastinit_py_string out value)
  string(REPLACE "\\" "\\\\" value "${value}")
  string(REPLACE "\"" "\\\"" value "${value}")
  set(${out} "\"${value}\"" PARENT_SCOPE)
endfunction()

function(fastinit_write_build_info)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "CORE;REASON;FIX;CXX;CPU_KERNELS;CUDA" "")
  if(arg_CORE)
    set(core "True")
  else()
    set(core "False")
  endif()
  set(text "# Written at build time by fastinit's CMakeLists.txt: how this installation was built.\n")
  string(APPEND text "COMPILED_CORE = ${core}\n")
  foreach(field REASON FIX CXX CPU_KERNELS CUDA)
    _fastinit_py_string(value "${arg_${field}}")
    if(field STREQUAL "REASON")
      set(name "NO_CORE_REASON")
    elseif(field STREQUAL "FIX")
      set(name "NO_CORE_FIX")
    else()
      set(name "${field}")
    endif()
    string(APPEND text "${name} = ${value}\n")
  endforeach()
  set(path "${CMAKE_BINARY_DIR}/fastinit/_build_info.py")
  file(CONFIGURE OUTPUT "${path}" CONTENT "${text}" @ONLY)  # rewritten only when it changes
  install(FILES "${path}" DESTINATION fastinit)
endfunction()
