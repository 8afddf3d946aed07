// Fill every ROI of a set into a 16-bit label image, largest first so a smaller nucleus keeps
// the pixels it shares with a larger one (nuclei-pa's rule); list "value<TAB>name" per ROI.
// Arguments: "ROISET|OUT.tif|NAMES.txt|WIDTH|HEIGHT"
parts = split(getArgument(), "|");
setBatchMode(true);
newImage("labels", "16-bit black", parseInt(parts[3]), parseInt(parts[4]), 1);
roiManager("reset");
roiManager("Open", parts[0]);
n = roiManager("count");
areas = newArray(n);
for (i = 0; i < n; i++) {
    roiManager("select", i);
    getStatistics(area);
    areas[i] = -area;
}
order = Array.rankPositions(areas);
names = "";
for (k = 0; k < n; k++) {
    i = order[k];
    roiManager("select", i);
    setColor(i + 1);
    fill();
    names = names + (i + 1) + "\t" + Roi.getName + "\n";
}
run("Select None");
saveAs("Tiff", parts[1]);
File.saveString(names, parts[2]);
