# onnx.proto is taken from the installed onnx Python package (never copied into
# the repository) and compiled with the system protoc into a static library.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
if(NOT KILN_ONNX_PROTO)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'onnx.proto'))"
    OUTPUT_VARIABLE KILN_ONNX_PROTO OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0 OR NOT EXISTS "${KILN_ONNX_PROTO}")
    message(FATAL_ERROR "onnx.proto not found: install the onnx Python package (pip install onnx) "
                        "or pass -DKILN_ONNX_PROTO=/path/to/onnx.proto")
  endif()
endif()
set(KILN_ONNX_PROTO "${KILN_ONNX_PROTO}" CACHE FILEPATH "onnx.proto from the onnx package")
message(STATUS "kiln: onnx.proto from ${KILN_ONNX_PROTO}")

set(_gen ${PROJECT_BINARY_DIR}/gen/onnx)
file(MAKE_DIRECTORY ${_gen})
configure_file(${KILN_ONNX_PROTO} ${_gen}/onnx.proto COPYONLY)
add_custom_command(
  OUTPUT ${_gen}/onnx.pb.cc ${_gen}/onnx.pb.h
  COMMAND protobuf::protoc --cpp_out=${_gen} -I${_gen} ${_gen}/onnx.proto
  DEPENDS ${_gen}/onnx.proto protobuf::protoc
  COMMENT "protoc onnx.proto")
add_library(kiln_onnx_proto STATIC ${_gen}/onnx.pb.cc)
target_include_directories(kiln_onnx_proto SYSTEM PUBLIC ${PROJECT_BINARY_DIR}/gen)
target_link_libraries(kiln_onnx_proto PUBLIC protobuf::libprotobuf)
set_target_properties(kiln_onnx_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

# kiln's own protobuf schemas (engine metadata, timing cache).
file(GLOB KILN_PROTOS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/engine/*.proto)
set(_kgen ${PROJECT_BINARY_DIR}/gen/kiln_proto)
file(MAKE_DIRECTORY ${_kgen})
set(_kiln_pb_srcs)
foreach(p ${KILN_PROTOS})
  get_filename_component(_n ${p} NAME_WE)
  add_custom_command(
    OUTPUT ${_kgen}/${_n}.pb.cc ${_kgen}/${_n}.pb.h
    COMMAND protobuf::protoc --cpp_out=${_kgen} -I${PROJECT_SOURCE_DIR}/src/engine ${p}
    DEPENDS ${p} protobuf::protoc)
  list(APPEND _kiln_pb_srcs ${_kgen}/${_n}.pb.cc)
endforeach()
if(_kiln_pb_srcs)
  add_library(kiln_engine_proto STATIC ${_kiln_pb_srcs})
else()
  add_library(kiln_engine_proto INTERFACE)
endif()
target_include_directories(kiln_engine_proto SYSTEM INTERFACE ${_kgen})
if(_kiln_pb_srcs)
  target_include_directories(kiln_engine_proto SYSTEM PUBLIC ${_kgen})
  target_link_libraries(kiln_engine_proto PUBLIC protobuf::libprotobuf)
  set_target_properties(kiln_engine_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)
endif()
