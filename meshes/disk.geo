// Disk of radius R centred at the origin, mesh size h.
// nhj passes h (mesh.size) and any mesh.parameters through ONELAB "Parameters/<name>".
DefineConstant[ h = {0.25, Name "Parameters/h"} ];
DefineConstant[ R = {5.0, Name "Parameters/R"} ];

SetFactory("OpenCASCADE");
Disk(1) = {0, 0, 0, R, R};
Physical Surface("domain", 1) = {1};
Physical Curve("boundary", 2) = Boundary{ Surface{1}; };
Mesh.CharacteristicLengthMin = h;
Mesh.CharacteristicLengthMax = h;
