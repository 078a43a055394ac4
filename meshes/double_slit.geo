// Double slit: the rectangle [-L, L] x [-W, W] minus a wall of thickness T at x = 0
// that is open in two slits of width D centred at y = +-Y. The wall is cut out of the
// domain, so the domain is non-convex and psi = 0 on the wall.
// nhj sets h from mesh.size and the others from mesh.parameters through ONELAB.
DefineConstant[ h = {0.15, Name "Parameters/h"} ];
DefineConstant[ L = {8.0, Name "Parameters/L"} ];
DefineConstant[ W = {6.0, Name "Parameters/W"} ];
DefineConstant[ T = {0.4, Name "Parameters/T"} ];
DefineConstant[ D = {0.8, Name "Parameters/D"} ];
DefineConstant[ Y = {1.5, Name "Parameters/Y"} ];

SetFactory("OpenCASCADE");
Rectangle(1) = {-L, -W, 0, 2*L, 2*W};
// three wall pieces: below the lower slit, between the slits, above the upper slit
Rectangle(2) = {-T/2, -W, 0, T, W - Y - D/2};
Rectangle(3) = {-T/2, -Y + D/2, 0, T, 2*Y - D};
Rectangle(4) = {-T/2, Y + D/2, 0, T, W - Y - D/2};
BooleanDifference(10) = { Surface{1}; Delete; }{ Surface{2, 3, 4}; Delete; };
Physical Surface("domain", 1) = {10};
Physical Curve("boundary", 2) = Boundary{ Surface{10}; };

// uniform size; the geometry is polygonal, so the mesh covers it exactly for any h
Mesh.MeshSizeMin = h;
Mesh.MeshSizeMax = h;
