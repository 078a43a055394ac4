// Disk of radius R centred at the origin, meshed at size h.
// nhj sets h from mesh.size and R from mesh.parameters through ONELAB "Parameters/<name>".
DefineConstant[ h = {0.25, Name "Parameters/h"} ];
DefineConstant[ R = {5.0, Name "Parameters/R"} ];

SetFactory("OpenCASCADE");
Disk(1) = {0, 0, 0, R, R};
Physical Surface("domain", 1) = {1};
Physical Curve("boundary", 2) = Boundary{ Surface{1}; };

// uniform size, so that the error of the inscribed polygon is governed by h alone
Mesh.MeshSizeMin = h;
Mesh.MeshSizeMax = h;
